/* Peer: tidings driven from C through its C ABI. Broadcast only: one
 * channel at /sse, published from the main thread on the peer protocol's
 * schedule (see bench/run.py).
 *
 *   gcc -O2 -std=c11 c_peer.c -I../../include ../../target/release/libtidings.a -lpthread -ldl -lm
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tidings.h"

static void check(tidings_status status, const char *what) {
    if (status != TIDINGS_OK) {
        fprintf(stderr, "c_peer: %s: %s (%s)\n", what, tidings_status_name(status), tidings_last_error());
        exit(1);
    }
}

static double now_seconds(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double seconds) {
    if (seconds <= 0) {
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

/* `<seq> <send time, ns since the epoch>`, padded with 'x' to `size` bytes. */
static void payload(char *out, size_t capacity, size_t seq, size_t size) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int length = snprintf(out, capacity, "%zu %lld%09ld", seq, (long long)ts.tv_sec, ts.tv_nsec);
    size_t end = (size_t)length;
    if (end + 1 < size && size < capacity) {
        out[end++] = ' ';
        while (end < size) {
            out[end++] = 'x';
        }
        out[end] = '\0';
    }
}

int main(int argc, char **argv) {
    long port = 0, subscribers = 1, events = 1000, size = 100, threads = 1;
    double rate = 0;
    bool prebuilt = false; /* --payloads prebuilt: publish cost alone, stale send times */
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *name = argv[i], *value = argv[i + 1];
        if (strcmp(name, "--port") == 0) port = atol(value);
        else if (strcmp(name, "--subscribers") == 0) subscribers = atol(value);
        else if (strcmp(name, "--events") == 0) events = atol(value);
        else if (strcmp(name, "--rate") == 0) rate = atof(value);
        else if (strcmp(name, "--size") == 0) size = atol(value);
        else if (strcmp(name, "--threads") == 0) threads = atol(value);
        else if (strcmp(name, "--payloads") == 0) {
            if (strcmp(value, "live") != 0 && strcmp(value, "prebuilt") != 0) {
                fprintf(stderr, "c_peer: --payloads %s: expected live or prebuilt\n", value);
                return 2;
            }
            prebuilt = strcmp(value, "prebuilt") == 0;
        }
        else if (strcmp(name, "--mode") == 0) {
            if (strcmp(value, "broadcast") != 0) {
                fprintf(stderr, "c_peer: only --mode broadcast is supported\n");
                return 2;
            }
        } else {
            fprintf(stderr, "c_peer: unknown argument %s\n", name);
            return 2;
        }
    }

    tidings_config config = tidings_config_default();
    config.port = (uint16_t)port;
    config.worker_threads = (uint32_t)threads;
    config.keepalive_ms = 0;
    tidings_server *server = NULL;
    check(tidings_server_new(&config, &server), "server");
    tidings_channel_options options = tidings_channel_options_default();
    options.history = 0;
    options.max_lag = events > 1024 ? (size_t)events : 1024; /* nobody is dropped for lag */
    tidings_channel *channel = NULL;
    check(tidings_server_channel(server, "/sse", &options, &channel), "channel");
    uint16_t bound = 0;
    check(tidings_server_start(server, &bound), "start");
    printf("port %u\n", bound);
    fflush(stdout);

    double give_up = now_seconds(CLOCK_MONOTONIC) + 120;
    while (tidings_channel_subscribers(channel) < (size_t)subscribers) {
        if (now_seconds(CLOCK_MONOTONIC) > give_up) {
            fprintf(stderr, "c_peer: subscribers never arrived\n");
            return 1;
        }
        sleep_seconds(0.01);
    }
    printf("subscribers %zu\n", tidings_channel_subscribers(channel));
    fflush(stdout);
    sleep_seconds(0.3);
    size_t capacity = (size_t)size + 64;
    /* One payload slot per event when prebuilt, else one reused slot. */
    size_t slots = prebuilt ? (size_t)events : 1;
    char *data = malloc(capacity * (slots ? slots : 1));
    if (data == NULL) {
        fprintf(stderr, "c_peer: out of memory\n");
        return 1;
    }
    for (size_t seq = 0; prebuilt && seq < slots; seq++) {
        payload(data + seq * capacity, capacity, seq, (size_t)size);
    }
    double start = now_seconds(CLOCK_MONOTONIC);
    for (long seq = 0; seq < events; seq++) {
        if (rate > 0) {
            sleep_seconds(start + (double)seq / rate - now_seconds(CLOCK_MONOTONIC));
        }
        char *slot = data + (prebuilt ? (size_t)seq * capacity : 0);
        if (!prebuilt) {
            payload(slot, capacity, (size_t)seq, (size_t)size);
        }
        tidings_event event = {.data = slot};
        check(tidings_channel_publish(channel, &event), "publish");
    }
    printf("published %ld in %.6f\n", events, now_seconds(CLOCK_MONOTONIC) - start);
    fflush(stdout);
    free(data);
    for (;;) {
        pause();
    }
}
