/* A private channel and a channel with an authorize hook, from C, for
 * tests/test_c_auth.py. Usage: auth_server SECRET. Prints
 * "auth: open http://127.0.0.1:<port>/" once listening, publishes one event
 * on each channel each time its number of subscribers grows, and exits
 * cleanly on Ctrl-C.
 *
 * The hook of /room lets in ?user=ada at once, denies ?user=bob with 402
 * from another thread, and frees the verdict of anyone else unanswered
 * (500). An unexpected status from the verdict functions is printed as
 * "auth: unexpected ..." for the test to see. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <string.h>

#include "publisher.h"

static void *deny_later(void *argument) {
    tidings_verdict *verdict = argument;
    demo_sleep(0.05);
    if (tidings_verdict_deny(verdict, 302, "not an error status") != TIDINGS_ERR_INVALID_STATUS) {
        fprintf(stderr, "auth: unexpected answer to a deny with 302\n");
    }
    if (tidings_verdict_deny(verdict, 402, "pay first") != TIDINGS_OK) {
        fprintf(stderr, "auth: unexpected failure of deny: %s\n", tidings_last_error());
    }
    if (tidings_verdict_allow(verdict) != TIDINGS_ERR_ALREADY_ANSWERED) {
        fprintf(stderr, "auth: unexpected second answer\n");
    }
    tidings_verdict_free(verdict);
    return NULL;
}

static void on_subscribe(void *user_data, const tidings_request *request, tidings_verdict *verdict) {
    (void)user_data;
    char user[32] = "";
    size_t length = 0;
    tidings_request_query(request, "user", user, sizeof user, &length);
    if (strcmp(user, "ada") == 0) {
        if (tidings_verdict_allow(verdict) != TIDINGS_OK) {
            fprintf(stderr, "auth: unexpected failure of allow: %s\n", tidings_last_error());
        }
        tidings_verdict_free(verdict);
    } else if (strcmp(user, "bob") == 0) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, deny_later, verdict) == 0) {
            pthread_detach(thread);
        } else {
            tidings_verdict_free(verdict);
        }
    } else {
        tidings_verdict_free(verdict); /* unanswered: 500 */
    }
}

static void publish_on_growth(tidings_channel *channel, size_t *seen, const char *data) {
    size_t subscribers = tidings_channel_subscribers(channel);
    if (subscribers > *seen) {
        tidings_event event = {.data = data};
        DEMO_CHECK(tidings_channel_publish(channel, &event));
    }
    *seen = subscribers;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SECRET\n", argv[0]);
        return 2;
    }
    tidings_config config = tidings_config_default();
    config.jwt_secret = argv[1];
    config.jwt_leeway_ms = 0;
    tidings_channel_options options = tidings_channel_options_default();
    options.private_channel = true;
    tidings_channel *channel = NULL;
    tidings_server *server = publisher_start_with("auth", config, "/private/news", &options, &channel);
    tidings_channel_options room_options = tidings_channel_options_default();
    tidings_channel *room = NULL;
    DEMO_CHECK(tidings_server_channel(server, "/room", &room_options, &room));
    DEMO_CHECK(tidings_channel_authorize(room, on_subscribe, NULL));
    size_t seen = 0;
    size_t seen_in_room = 0;
    while (!demo_stopping) {
        publish_on_growth(channel, &seen, "for members, from C");
        publish_on_growth(room, &seen_in_room, "welcome to the room");
        demo_sleep(0.01);
    }
    tidings_channel_free(room);
    publisher_finish(server, channel);
    return 0;
}
