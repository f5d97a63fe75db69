/* A server whose channel /c is joined through a broker, for
 * tests/test_c_broker.py. Usage: broker_node URL NAME COUNT SUBSCRIBERS.
 * Prints "broker_node: open http://..." once listening; once SUBSCRIBERS
 * clients are subscribed here, publishes COUNT events "NAME:<i>", then one
 * more confirmed, printing "confirmed <id>"; exits cleanly on Ctrl-C. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

#include "publisher.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: broker_node URL NAME COUNT SUBSCRIBERS\n");
        return 2;
    }
    const char *name = argv[2];
    unsigned long count = strtoul(argv[3], NULL, 10);
    size_t subscribers = (size_t)strtoul(argv[4], NULL, 10);
    tidings_config config = tidings_config_default();
    config.broker = argv[1];
    tidings_channel_options options = tidings_channel_options_default();
    tidings_channel *channel = NULL;
    tidings_server *server = publisher_start_with("broker_node", config, "/c", &options, &channel);
    publisher_wait_for(channel, subscribers);
    char data[64];
    for (unsigned long i = 0; i < count && !demo_stopping; i++) {
        snprintf(data, sizeof data, "%s:%lu", name, i);
        tidings_event event = {.data = data};
        DEMO_CHECK(tidings_channel_publish(channel, &event));
    }
    tidings_event last = {.data = "confirmed"};
    char id[64];
    size_t id_length = 0;
    DEMO_CHECK(tidings_channel_publish_confirmed(channel, &last, 10000, id, sizeof id, &id_length));
    printf("confirmed %s\n", id);
    fflush(stdout);
    /* A buffer too small still publishes, and says what it needs. */
    tidings_status small = tidings_channel_publish_confirmed(channel, &last, 10000, NULL, 0, &id_length);
    printf("small buffer: %s, needs %zu\n", tidings_status_name(small), id_length);
    fflush(stdout);
    publisher_finish(server, channel);
    return 0;
}
