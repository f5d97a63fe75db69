/* One producer thread per client stream sends EVENTS events of 1 KiB with
 * tidings_stream_send, which waits while the client's queue is full. A
 * route, /sent, answers how many the producers have sent so far, so the test
 * can see a slow reader hold its producer back.
 * Prints "slow_reader: open http://..." once listening; exits cleanly on
 * Ctrl-C. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tidings.h"
#include "../../examples/c/demo_cli.h"

/* 20 MiB: more than the socket buffers of a reader that stalls hold. */
#define EVENTS 20000

/* How many events the producers have sent; C11 atomics are not C++20's, so
 * a mutex keeps this file valid as both. */
static int sent = 0;
static pthread_mutex_t sent_lock = PTHREAD_MUTEX_INITIALIZER;

static void *produce(void *argument) {
    tidings_stream *stream = (tidings_stream *)argument;
    char data[1024];
    for (int n = 0; n < EVENTS; n++) {
        memset(data, 'x', sizeof data);
        int prefix = snprintf(data, sizeof data, "%d ", n);
        data[prefix] = 'x'; /* over snprintf's terminator: 1 KiB of text */
        tidings_event event = {.data = data, .data_len = sizeof data};
        if (tidings_stream_send(stream, &event) != TIDINGS_OK) {
            break; /* the client left */
        }
        pthread_mutex_lock(&sent_lock);
        sent++;
        pthread_mutex_unlock(&sent_lock);
    }
    tidings_stream_free(stream); /* ends the response after what was queued */
    return NULL;
}

static void on_open(void *user_data, const tidings_request *request, tidings_stream *stream) {
    (void)user_data;
    (void)request;
    demo_start_producer(stream, produce);
}

static void on_sent(void *user_data, const tidings_request *request, tidings_reply *reply) {
    (void)user_data;
    (void)request;
    char body[32];
    pthread_mutex_lock(&sent_lock);
    int length = snprintf(body, sizeof body, "%d", sent);
    pthread_mutex_unlock(&sent_lock);
    tidings_reply_send(reply, 200, "text/plain", (const uint8_t *)body, (size_t)length);
    tidings_reply_free(reply);
}

int main(void) {
    tidings_config config = tidings_config_default();
    config.port = 0;
    config.stream_queue = 8;
    tidings_server *server = NULL;
    DEMO_CHECK(tidings_server_new(&config, &server));
    DEMO_CHECK(tidings_server_stream(server, "/s", on_open, NULL, NULL));
    DEMO_CHECK(tidings_server_route(server, "/sent", on_sent, NULL));
    uint16_t port = 0;
    DEMO_CHECK(tidings_server_start(server, &port));
    printf("slow_reader: open http://127.0.0.1:%u/\n", (unsigned)port);
    fflush(stdout);
    demo_wait_for_ctrl_c();
    DEMO_CHECK(tidings_server_stop(server, NULL));
    tidings_server_free(server);
    return 0;
}
