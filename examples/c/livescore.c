/* Livescore: the mock match replayed on one broadcast channel from a timer
 * thread; goals as `event: goal`, everything else unnamed.
 *
 *   cc -std=c11 livescore.c -I../../include -L../../target/release -ltidings -lpthread
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>

#include "tidings.h"
#include "demo_cli.h"

typedef struct match {
    char **updates; /* each update as compact JSON */
    size_t count;
} match;

/* Splits the top-level array of match.json into its objects, dropping the
 * whitespace outside strings so that each update is one compact line. */
static match load_match(const char *path) {
    match loaded = {NULL, 0};
    FILE *file = fopen(path, "rb");
    if (!file) {
        perror(path);
        exit(1);
    }
    static char text[1 << 20];
    size_t length = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[length] = '\0';

    char *current = (char *)malloc(length + 1);
    size_t used = 0;
    int depth = 0, in_string = 0, escaped = 0;
    for (size_t i = 0; i < length; i++) {
        char c = text[i];
        if (!in_string && isspace((unsigned char)c)) {
            continue;
        }
        if (in_string) {
            escaped = !escaped && c == '\\';
            in_string = escaped || c != '"';
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{') {
            depth++;
        } else if (c == '}') {
            depth--;
        }
        if (depth > 0 || c == '}') {
            current[used++] = c;
        }
        if (depth == 0 && c == '}') {
            current[used] = '\0';
            loaded.updates = (char **)realloc(loaded.updates, (loaded.count + 1) * sizeof *loaded.updates);
            loaded.updates[loaded.count++] = strdup(current);
            used = 0;
        }
    }
    free(current);
    return loaded;
}

typedef struct replay {
    tidings_channel *scores;
    match updates;
    double interval;
} replay;

static void *publish_forever(void *argument) {
    replay *job = (replay *)argument;
    for (size_t n = 0; !demo_stopping; n = (n + 1) % job->updates.count) {
        const char *update = job->updates.updates[n];
        tidings_event event = {.data = update};
        if (strstr(update, "\"type\":\"goal\"")) {
            event.event = "goal";
        }
        if (tidings_channel_publish(job->scores, &event) != TIDINGS_OK) {
            break; /* stopped */
        }
        demo_sleep(job->interval);
    }
    return NULL;
}

int main(int argc, char **argv) {
    demo_args args = demo_parse(argc, argv, "--interval", 2.0);
    char page[4096], data[4096];
    snprintf(page, sizeof page, "%s/pages/livescore.html", args.examples);
    snprintf(data, sizeof data, "%s/data/match.json", args.examples);

    tidings_server *server = demo_server(&args);
    tidings_channel_options options = tidings_channel_options_default();
    options.history = 100;
    replay job = {NULL, load_match(data), args.seconds};
    DEMO_CHECK(tidings_server_channel(server, "/livescore", &options, &job.scores));
    DEMO_CHECK(tidings_server_page(server, "/", page));
    demo_start("livescore", server, &args);

    pthread_t publisher;
    if (pthread_create(&publisher, NULL, publish_forever, &job) != 0) {
        fprintf(stderr, "cannot start the publisher thread\n");
        return 1;
    }
    demo_wait_for_ctrl_c();
    DEMO_CHECK(tidings_server_stop(server, NULL));
    pthread_join(publisher, NULL);
    tidings_channel_free(job.scores);
    tidings_server_free(server);
    for (size_t i = 0; i < job.updates.count; i++) {
        free(job.updates.updates[i]);
    }
    free(job.updates.updates);
    return 0;
}
