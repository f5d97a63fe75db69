/* Publishes one event of every shape the C ABI can give, for
 * tests/test_c_events.py to compare with what a client receives.
 * Usage: events SUBSCRIBERS. Prints "events: open http://..." once
 * listening, publishes once SUBSCRIBERS are subscribed to /events, and
 * exits cleanly on Ctrl-C. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

#include "publisher.h"

int main(int argc, char **argv) {
    size_t subscribers = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1;
    tidings_channel_options options = tidings_channel_options_default();
    options.auto_id = false;
    tidings_channel *channel = NULL;
    tidings_server *server = publisher_start("events", "/events", &options, &channel);
    publisher_wait_for(channel, subscribers);
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
    publisher_finish(server, channel);
    return 0;
}
