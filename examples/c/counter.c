/* Counter: 20 `new_message` events a second apart, then `end_event`, for
 * each client, produced by a worker thread of its own.
 *
 *   cc -std=c11 counter.c -I../../include -L../../target/release -ltidings -lpthread
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>

#include "tidings.h"
#include "demo_cli.h"

static double delay_seconds = 1.0;

/* Runs on its own thread: sends until done or until the client leaves. */
static void *produce(void *argument) {
    tidings_stream *stream = (tidings_stream *)argument;
    char data[64];
    bool client_here = true;
    for (int n = 1; n <= 20 && client_here; n++) {
        snprintf(data, sizeof data, "Counter value %d", n);
        tidings_event event = {.data = data, .event = "new_message", .id = "message_id", .retry_ms = 15000};
        /* A failed send means the client left: stop producing. */
        client_here = tidings_stream_send(stream, &event) == TIDINGS_OK;
        if (client_here) {
            demo_sleep(delay_seconds);
        }
    }
    if (client_here) {
        tidings_event end = {.data = "End of the stream", .event = "end_event", .id = "message_id", .retry_ms = 15000};
        tidings_stream_send(stream, &end);
    }
    tidings_stream_free(stream); /* ends the response if it is still open */
    return NULL;
}

static void on_open(void *user_data, const tidings_request *request, tidings_stream *stream) {
    (void)user_data;
    (void)request;
    demo_start_producer(stream, produce);
}

int main(int argc, char **argv) {
    demo_args args = demo_parse(argc, argv, "--delay", 1.0);
    delay_seconds = args.seconds;
    char page[4096];
    snprintf(page, sizeof page, "%s/pages/counter.html", args.examples);

    tidings_server *server = demo_server(&args);
    DEMO_CHECK(tidings_server_stream(server, "/stream", on_open, NULL, NULL));
    DEMO_CHECK(tidings_server_page(server, "/", page));
    demo_start("counter", server, &args);

    demo_wait_for_ctrl_c();
    DEMO_CHECK(tidings_server_stop(server, NULL));
    tidings_server_free(server);
    return 0;
}
