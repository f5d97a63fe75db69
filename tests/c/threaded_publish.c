/* Four threads publish to one channel while the test's clients read.
 * Usage: threaded_publish SUBSCRIBERS. Prints "threaded: open http://..."
 * once listening, publishes once SUBSCRIBERS are connected, and exits
 * cleanly on Ctrl-C. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "publisher.h"

#define PUBLISHERS 4
#define PER_PUBLISHER 2500

static tidings_channel *channel = NULL;

static void *publish(void *argument) {
    int publisher = (int)(intptr_t)argument;
    char data[32];
    for (int n = 0; n < PER_PUBLISHER; n++) {
        snprintf(data, sizeof data, "%d:%d", publisher, n);
        tidings_event event = {.data = data};
        DEMO_CHECK(tidings_channel_publish(channel, &event));
    }
    return NULL;
}

int main(int argc, char **argv) {
    size_t subscribers = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1;
    tidings_channel_options options = tidings_channel_options_default();
    options.history = 0;
    options.auto_id = false;
    options.max_lag = PUBLISHERS * PER_PUBLISHER;
    tidings_server *server = publisher_start("threaded", "/c", &options, &channel);
    publisher_wait_for(channel, subscribers);
    pthread_t threads[PUBLISHERS];
    for (int i = 0; i < PUBLISHERS; i++) {
        pthread_create(&threads[i], NULL, publish, (void *)(intptr_t)i);
    }
    for (int i = 0; i < PUBLISHERS; i++) {
        pthread_join(threads[i], NULL);
    }
    publisher_finish(server, channel);
    return 0;
}
