/* What the publishing test programs share: a server on a free port with one
 * channel, announced on stdout as "<name>: open http(s)://127.0.0.1:<port>/"
 * (what the tests wait for), a wait for the test's clients, and a clean stop
 * on Ctrl-C. */
#ifndef TIDINGS_TESTS_PUBLISHER_H
#define TIDINGS_TESTS_PUBLISHER_H

#include <stdio.h>

#include "tidings.h"
#include "../../examples/c/demo_cli.h"

/* Starts a server made with `config` (its port replaced by 0) serving a
 * channel at `path`; returns the server, and the channel through `channel`.
 * Announces it as https:// when `config` has a certificate. Exits the
 * program on failure. */
static inline tidings_server *publisher_start_with(const char *name, tidings_config config, const char *path,
                                                   const tidings_channel_options *options,
                                                   tidings_channel **channel) {
    config.port = 0;
    tidings_server *server = NULL;
    DEMO_CHECK(tidings_server_new(&config, &server));
    DEMO_CHECK(tidings_server_channel(server, path, options, channel));
    uint16_t port = 0;
    DEMO_CHECK(tidings_server_start(server, &port));
    printf("%s: open %s://127.0.0.1:%u/\n", name, config.tls_cert ? "https" : "http", (unsigned)port);
    fflush(stdout);
    signal(SIGINT, demo_on_signal);
    return server;
}

/* Starts a server with the default configuration (see publisher_start_with). */
static inline tidings_server *publisher_start(const char *name, const char *path,
                                              const tidings_channel_options *options,
                                              tidings_channel **channel) {
    return publisher_start_with(name, tidings_config_default(), path, options, channel);
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
