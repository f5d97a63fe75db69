/* Publishes one event of every shape the C ABI can give, for
 * tests/test_c_events.py to compare with what a client receives.
 * Usage: events SUBSCRIBERS. Prints "events: open http://..." once
 * listening, publishes once SUBSCRIBERS are subscribed to /events, and
 * exits cleanly on Ctrl-C. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>

#include "tidings.h"
#include "../../examples/c/demo_cli.h"

int main(int argc, char **argv) {
    size_t subscribers = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1;
    tidings_config config = tidings_config_default();
    config.port = 0;
    tidings_server *server = NULL;
    DEMO_CHECK(tidings_server_new(&config, &server));
    tidings_channel_options options = tidings_channel_options_default();
    options.auto_id = false;
    tidings_channel *channel = NULL;
    DEMO_CHECK(tidings_server_channel(server, "/events", &options, &channel));
    uint16_t port = 0;
    DEMO_CHECK(tidings_server_start(server, &port));
    printf("events: open http://127.0.0.1:%u/\n", (unsigned)port);
    fflush(stdout);

    signal(SIGINT, demo_on_signal);
    while (tidings_channel_subscribers(channel) < subscribers && !demo_stopping) {
        demo_sleep(0.01);
    }
    static const char with_nul[] = {'n', 'u', 'l', '\0', 'i', 'n', 's', 'i', 'd', 'e'};
    tidings_event shapes[] = {
        {.data = "plain"},
        {.data = "two\nlines"},
        {.data = "crlf\r\nand cr\rend"},
        {.data = "named", .event = "update"},
        {.data = "with an id", .id = "custom-7"},
        {.data = "reconnect later", .retry_ms = 2500},
        {.data = "after a comment", .comment = "a note"},
        {.data = with_nul, .data_len = sizeof with_nul},
        {.data = "h\xc3\xa9llo \xe2\x9c\x93"},
        {.data = "the end", .event = "end"},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        DEMO_CHECK(tidings_channel_publish(channel, &shapes[i]));
    }
    demo_wait_for_ctrl_c();
    DEMO_CHECK(tidings_server_stop(server, NULL));
    tidings_channel_free(channel);
    tidings_server_free(server);
    return 0;
}
