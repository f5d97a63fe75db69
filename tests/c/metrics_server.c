/* A channel and the metrics route from C, for tests/test_c_metrics.py.
 * Prints "metrics: open http://127.0.0.1:<port>/" once listening, publishes
 * three events once a client subscribed to /c, and exits cleanly on Ctrl-C. */
#define _POSIX_C_SOURCE 200809L

#include "publisher.h"

int main(void) {
    tidings_config config = tidings_config_default();
    config.metrics_path = "/metrics";
    tidings_channel_options options = tidings_channel_options_default();
    tidings_channel *channel = NULL;
    tidings_server *server = publisher_start_with("metrics", config, "/c", &options, &channel);
    int published = 0;
    while (!demo_stopping) {
        if (!published && tidings_channel_subscribers(channel) > 0) {
            const char *data[] = {"one", "two", "three"};
            for (int i = 0; i < 3; i++) {
                tidings_event event = {.data = data[i]};
                DEMO_CHECK(tidings_channel_publish(channel, &event));
            }
            published = 1;
        }
        demo_sleep(0.01);
    }
    publisher_finish(server, channel);
    return 0;
}
