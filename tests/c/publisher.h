/* What the publishing test programs share: a server on a free port with one
 * channel, announced on stdout as "<name>: open http://127.0.0.1:<port>/"
 * (what the tests wait for), a wait for the test's clients, and a clean stop
 * on Ctrl-C. */
#ifndef TIDINGS_TESTS_PUBLISHER_H
#define TIDINGS_TESTS_PUBLISHER_H

#include <stdio.h>

#include "tidings.h"
#include "../../examples/c/demo_cli.h"

/* Starts a server serving a channel at `path`; returns the server, and the
 * channel through `channel`. Exits the program on failure. */
static inline tidings_server *publisher_start(const char *name, const char *path,
                                              const tidings_channel_options *options,
                                              tidings_channel **channel) {
    tidings_config config = tidings_config_default();
    config.port = 0;
    tidings_server *server = NULL;
    DEMO_CHECK(tidings_server_new(&config, &server));
    DEMO_CHECK(tidings_server_channel(server, path, options, channel));
    uint16_t port = 0;
    DEMO_CHECK(tidings_server_start(server, &port));
    printf("%s: open http://127.0.0.1:%u/\n", name, (unsigned)port);
    fflush(stdout);
    signal(SIGINT, demo_on_signal);
    return server;
}

/* Waits until `subscribers` clients are subscribed (or Ctrl-C). */
static inline void publisher_wait_for(const tidings_channel *channel, size_t subscribers) {
    while (tidings_channel_subscribers(channel) < subscribers && !demo_stopping) {
        demo_sleep(0.01);
    }
}

/* Waits for Ctrl-C, then stops and frees everything. */
static inline void publisher_finish(tidings_server *server, tidings_channel *channel) {
    demo_wait_for_ctrl_c();
    DEMO_CHECK(tidings_server_stop(server, NULL));
    tidings_channel_free(channel);
    tidings_server_free(server);
}

#endif
