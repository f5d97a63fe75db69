/* A Mercure hub from C, for tests/test_c_hub.py: `config.hub_path` with the
 * publishers' key from argv[1], and a channel /scores that is the hub topic
 * "/scores". Prints "hub: open http://127.0.0.1:<port>/" once listening,
 * publishes "from C" on /scores once a client subscribed to the channel,
 * and exits cleanly on Ctrl-C. */
#define _POSIX_C_SOURCE 200809L

#include "publisher.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PUBLISHER_KEY\n", argv[0]);
        return 2;
    }
    tidings_config config = tidings_config_default();
    config.hub_path = "/.well-known/mercure";
    config.hub_publisher_key = argv[1];
    tidings_channel_options options = tidings_channel_options_default();
    tidings_channel *channel = NULL;
    tidings_server *server = publisher_start_with("hub", config, "/scores", &options, &channel);
    int published = 0;
    while (!demo_stopping) {
        if (!published && tidings_channel_subscribers(channel) > 0) {
            tidings_event event = {.data = "from C", .event = "score"};
            DEMO_CHECK(tidings_channel_publish(channel, &event));
            published = 1;
        }
        demo_sleep(0.01);
    }
    publisher_finish(server, channel);
    return 0;
}
