/* A channel served over TLS (HTTP/1.1 and HTTP/2) from C, for
 * tests/test_c_tls.py. Usage: tls_server CERT KEY. Prints
 * "tls: open https://127.0.0.1:<port>/" once listening, publishes one event
 * once a client subscribed to /c, reloads the certificate files on SIGHUP
 * (reporting a failure on stderr), and exits cleanly on Ctrl-C. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>

#include "publisher.h"

static volatile sig_atomic_t reload_requested = 0;

static void on_hangup(int signal_number) {
    (void)signal_number;
    reload_requested = 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CERT KEY\n", argv[0]);
        return 2;
    }
    tidings_config config = tidings_config_default();
    config.tls_cert = argv[1];
    config.tls_key = argv[2];
    config.max_streams_per_connection = 20;
    tidings_channel_options options = tidings_channel_options_default();
    tidings_channel *channel = NULL;
    tidings_server *server = publisher_start_with("tls", config, "/c", &options, &channel);
    signal(SIGTERM, demo_on_signal);
    /* sigaction, not signal(): under _POSIX_C_SOURCE, glibc's signal() resets
     * the handler after one delivery, and a second SIGHUP would kill us. */
    struct sigaction hangup = {0};
    hangup.sa_handler = on_hangup;
    sigemptyset(&hangup.sa_mask);
    sigaction(SIGHUP, &hangup, NULL);
    int published = 0;
    while (!demo_stopping) {
        if (!published && tidings_channel_subscribers(channel) > 0) {
            tidings_event event = {.data = "over tls from C", .id = "c-1"};
            DEMO_CHECK(tidings_channel_publish(channel, &event));
            published = 1;
        }
        if (reload_requested) {
            reload_requested = 0;
            if (tidings_server_reload_tls(server) == TIDINGS_OK) {
                fprintf(stderr, "tls: reloaded\n");
            } else {
                fprintf(stderr, "tls: reload failed: %s\n", tidings_last_error());
            }
        }
        demo_sleep(0.01);
    }
    publisher_finish(server, channel);
    return 0;
}
