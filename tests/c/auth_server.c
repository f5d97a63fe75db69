/* A private channel from C, for tests/test_c_auth.py. Usage: auth_server
 * SECRET. Prints "auth: open http://127.0.0.1:<port>/" once listening,
 * publishes one event each time the number of subscribers of
 * /private/news grows, and exits cleanly on Ctrl-C. */
#define _POSIX_C_SOURCE 200809L

#include "publisher.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SECRET\n", argv[0]);
        return 2;
    }
    tidings_config config = tidings_config_default();
    config.jwt_secret = argv[1];
    config.jwt_leeway_ms = 0;
    tidings_channel_options options = tidings_channel_options_default();
    options.private_channel = true;
    tidings_channel *channel = NULL;
    tidings_server *server = publisher_start_with("auth", config, "/private/news", &options, &channel);
    size_t seen = 0;
    while (!demo_stopping) {
        size_t subscribers = tidings_channel_subscribers(channel);
        if (subscribers > seen) {
            tidings_event event = {.data = "for members, from C"};
            DEMO_CHECK(tidings_channel_publish(channel, &event));
        }
        seen = subscribers;
        demo_sleep(0.01);
    }
    publisher_finish(server, channel);
    return 0;
}
