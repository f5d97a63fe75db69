/* What the C demos share: their flags, waiting for Ctrl-C, and a thread per
 * stream producer. */
#ifndef TIDINGS_DEMO_CLI_H
#define TIDINGS_DEMO_CLI_H

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct demo_args {
    const char *host;
    unsigned port;
    double seconds; /* --delay or --interval */
    const char *examples; /* --examples: the examples/ directory */
} demo_args;

static volatile sig_atomic_t demo_stopping = 0;

static inline void demo_on_signal(int signal_number) {
    (void)signal_number;
    demo_stopping = 1;
}

/* Parses --host, --port, --examples and the demo's own seconds flag. */
static inline demo_args demo_parse(int argc, char **argv, const char *seconds_flag, double seconds) {
    demo_args args = {"127.0.0.1", 8000, seconds, "examples"};
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (value && strcmp(argv[i], "--host") == 0) {
            args.host = value;
        } else if (value && strcmp(argv[i], "--port") == 0) {
            args.port = (unsigned)strtoul(value, NULL, 10);
        } else if (value && strcmp(argv[i], seconds_flag) == 0) {
            args.seconds = strtod(value, NULL);
        } else if (value && strcmp(argv[i], "--examples") == 0) {
            args.examples = value;
        } else {
            fprintf(stderr, "usage: %s [--host HOST] [--port PORT] [%s SECONDS] [--examples DIR]\n", argv[0],
                    seconds_flag);
            exit(2);
        }
        i++;
    }
    return args;
}

static inline void demo_sleep(double seconds) {
    struct timespec pause;
    pause.tv_sec = (time_t)seconds;
    pause.tv_nsec = (long)((seconds - (double)pause.tv_sec) * 1e9);
    nanosleep(&pause, NULL);
}

/* Blocks until SIGINT or SIGTERM. */
static inline void demo_wait_for_ctrl_c(void) {
    signal(SIGINT, demo_on_signal);
    signal(SIGTERM, demo_on_signal);
    while (!demo_stopping) {
        demo_sleep(0.05);
    }
}

#define DEMO_CHECK(call)                                                                       \
    do {                                                                                       \
        tidings_status demo_status_ = (call);                                                  \
        if (demo_status_ != TIDINGS_OK) {                                                      \
            fprintf(stderr, "%s failed: %s: %s\n", #call, tidings_status_name(demo_status_), \
                    tidings_last_error());                                                     \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

/* A server on the demo's host and port with CORS open to any origin (the
 * demos' pages may be opened from elsewhere). */
static inline tidings_server *demo_server(const demo_args *args) {
    tidings_config config = tidings_config_default();
    config.host = args->host;
    config.port = (uint16_t)args->port;
    config.cors = TIDINGS_CORS_ANY_ORIGIN;
    tidings_server *server = NULL;
    DEMO_CHECK(tidings_server_new(&config, &server));
    return server;
}

/* Starts serving and prints the URL to open. */
static inline void demo_start(const char *name, tidings_server *server, const demo_args *args) {
    uint16_t port = 0;
    DEMO_CHECK(tidings_server_start(server, &port));
    printf("%s: open http://%s:%u/\n", name, args->host, (unsigned)port);
    fflush(stdout);
}

/* Runs `produce(stream)` on a thread of its own, where it may wait in
 * tidings_stream_send (an open callback runs on an engine thread and must
 * return at once); answers 503 if no thread can start. */
static inline void demo_start_producer(tidings_stream *stream, void *(*produce)(void *)) {
    pthread_t worker;
    if (pthread_create(&worker, NULL, produce, stream) != 0) {
        tidings_stream_reject(stream, 503, "cannot start a producer");
        tidings_stream_free(stream);
        return;
    }
    pthread_detach(worker);
}

#endif
