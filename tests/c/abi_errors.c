/* The C ABI's contract on bad input and misuse: every case returns the
 * documented status and message, nothing crashes, nothing leaks. Built with
 * -Werror as C and as C++, and run plain, under ASan+UBSan, and under
 * valgrind by tests/test_c_server.py. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "tidings.h"

static int passed = 0, failed = 0;

#define EXPECT(condition)                                                         \
    do {                                                                          \
        if (condition) {                                                          \
            passed++;                                                             \
        } else {                                                                  \
            failed++;                                                             \
            fprintf(stderr, "%s:%d: expected %s (last error: %s)\n", __FILE__, \
                    __LINE__, #condition, tidings_last_error());                  \
        }                                                                         \
    } while (0)

#define EXPECT_STATUS(call, expected)                                                       \
    do {                                                                                    \
        tidings_status got_ = (call);                                                       \
        if (got_ == (expected)) {                                                           \
            passed++;                                                                       \
        } else {                                                                            \
            failed++;                                                                       \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__, __LINE__, \
                    #call, tidings_status_name(got_), tidings_status_name(expected),        \
                    tidings_last_error());                                                  \
        }                                                                                   \
    } while (0)

#define EXPECT_ERROR_MENTIONS(text) EXPECT(strstr(tidings_last_error(), (text)) != NULL)

static void pause_ms(long ms) {
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

/* A raw HTTP client: sends one GET and returns the socket. */
static int open_get(uint16_t port, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* A read that gets nothing for 5 s fails instead of hanging the test. */
    struct timeval patience = {5, 0};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    }
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        perror("connect");
        exit(1);
    }
    char request[256];
    int length = snprintf(request, sizeof request,
                          "GET %s HTTP/1.1\r\nhost: x\r\nx-test: yes\r\nlast-event-id: 41\r\n\r\n", path);
    if (write(fd, request, (size_t)length) != length) {
        perror("write");
        exit(1);
    }
    return fd;
}

/* What the stream callbacks saw, shared with the main thread. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static tidings_stream *opened = NULL;
static char seen_name[16], seen_header[16], seen_last_id[16], seen_path[32];
static size_t small_buffer_length = 0;
static tidings_status small_buffer_status = TIDINGS_OK, missing_status = TIDINGS_OK;
static int closes = 0;
static uint64_t closed_id = 0;

static void on_open(void *user_data, const tidings_request *request, tidings_stream *stream) {
    (void)user_data;
    pthread_mutex_lock(&seen_lock);
    size_t length = 0;
    small_buffer_status = tidings_request_query(request, "name", NULL, 0, &length);
    small_buffer_length = length;
    tidings_request_query(request, "name", seen_name, sizeof seen_name, &length);
    missing_status = tidings_request_query(request, "absent", seen_name + 15, 1, &length);
    snprintf(seen_header, sizeof seen_header, "%s", tidings_request_header(request, "X-TEST"));
    snprintf(seen_last_id, sizeof seen_last_id, "%s", tidings_request_last_event_id(request));
    snprintf(seen_path, sizeof seen_path, "%s", tidings_request_path(request));
    opened = stream;
    pthread_mutex_unlock(&seen_lock);
}

static void on_close(void *user_data, uint64_t stream_id) {
    (void)user_data;
    pthread_mutex_lock(&seen_lock);
    closes++;
    closed_id = stream_id;
    pthread_mutex_unlock(&seen_lock);
}

static tidings_stream *wait_for_stream(void) {
    for (int tries = 0; tries < 1000; tries++) {
        pthread_mutex_lock(&seen_lock);
        tidings_stream *stream = opened;
        opened = NULL;
        pthread_mutex_unlock(&seen_lock);
        if (stream) {
            return stream;
        }
        pause_ms(10);
    }
    fprintf(stderr, "no stream opened\n");
    exit(1);
}

static void test_version_and_status_names(void) {
    EXPECT(strcmp(tidings_version(), TIDINGS_VERSION) == 0);
    EXPECT(strcmp(tidings_status_name(TIDINGS_OK), "TIDINGS_OK") == 0);
    EXPECT(strcmp(tidings_status_name(TIDINGS_ERR_BIND), "TIDINGS_ERR_BIND") == 0);
    EXPECT(strcmp(tidings_status_name(12345), "TIDINGS_UNKNOWN_STATUS") == 0);
}

static void test_bad_arguments_and_config(void) {
    tidings_server *server = NULL;
    EXPECT_STATUS(tidings_server_new(NULL, NULL), TIDINGS_ERR_NULL_ARGUMENT);
    EXPECT_ERROR_MENTIONS("`out`");

    tidings_config config = tidings_config_default();
    config.max_head_bytes = 100;
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_INVALID_CONFIG);
    EXPECT_ERROR_MENTIONS("max_head_bytes");
    EXPECT(server == NULL); /* outputs are written only on success */

    config = tidings_config_default();
    config.cors = 7;
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_INVALID_CONFIG);
    config.cors = TIDINGS_CORS_ORIGINS;
    config.cors_origins_len = 2;
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_NULL_ARGUMENT);

    config = tidings_config_default();
    config.host = "\xff\xfe";
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_INVALID_UTF8);
    EXPECT_ERROR_MENTIONS("config.host");

    /* A rediss:// broker's CA file is read when the server is made. */
    config = tidings_config_default();
    config.broker = "rediss://127.0.0.1:1/0";
    config.broker_ca = "/nonexistent/tidings-ca.pem";
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_INVALID_CONFIG);
    EXPECT_ERROR_MENTIONS("tidings-ca.pem");
    config.broker = "redis://127.0.0.1:1/0";
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_INVALID_CONFIG);
    EXPECT_ERROR_MENTIONS("rediss://");

    /* TLS: the certificate and key go together, and are read when the server is made. */
    config = tidings_config_default();
    config.tls_cert = "/nonexistent/tidings-cert.pem";
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_INVALID_CONFIG);
    EXPECT_ERROR_MENTIONS("together");
    config.tls_key = "/nonexistent/tidings-key.pem";
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_INVALID_CONFIG);
    EXPECT_ERROR_MENTIONS("tidings-cert.pem");
    config = tidings_config_default();
    config.max_streams_per_connection = 0;
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_INVALID_CONFIG);
    EXPECT_ERROR_MENTIONS("max_streams_per_connection");
    EXPECT_STATUS(tidings_server_reload_tls(NULL), TIDINGS_ERR_NULL_ARGUMENT);

    /* The metrics path is a path, and no route may take it afterwards. */
    config = tidings_config_default();
    config.metrics_path = "metrics";
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_INVALID_CONFIG);
    EXPECT_ERROR_MENTIONS("metrics_path");
    config.metrics_path = "/metrics";
    config.port = 0;
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_OK);
    tidings_channel_options taken_options = tidings_channel_options_default();
    tidings_channel *taken = NULL;
    EXPECT_STATUS(tidings_server_channel(server, "/metrics", &taken_options, &taken), TIDINGS_ERR_ROUTE_EXISTS);
    EXPECT(taken == NULL);
    tidings_server_free(server);
    server = NULL;

    /* Authorize hooks: a channel and a callback are required; so is a verdict. */
    EXPECT_STATUS(tidings_channel_authorize(NULL, NULL, NULL), TIDINGS_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(tidings_verdict_allow(NULL), TIDINGS_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(tidings_verdict_deny(NULL, 403, "no"), TIDINGS_ERR_NULL_ARGUMENT);
    tidings_verdict_free(NULL);

    /* Tokens: one key, of the length its algorithm needs; a private channel needs one. */
    config = tidings_config_default();
    config.jwt_secret = "a secret long enough for HS256 at 32+ bytes";
    config.jwt_key_file = "/nonexistent/tidings-public.pem";
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_INVALID_CONFIG);
    EXPECT_ERROR_MENTIONS("one key");
    config.jwt_key_file = NULL;
    config.jwt_algorithm = "HS512";
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_INVALID_CONFIG);
    EXPECT_ERROR_MENTIONS("at least 64 bytes");
    config.jwt_algorithm = "\xff";
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_ERR_INVALID_UTF8);
    EXPECT_ERROR_MENTIONS("config.jwt_algorithm");
    config = tidings_config_default();
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_OK);
    taken_options.private_channel = true;
    EXPECT_STATUS(tidings_server_channel(server, "/private", &taken_options, &taken), TIDINGS_ERR_INVALID_CONFIG);
    EXPECT_ERROR_MENTIONS("no JWT key");
    tidings_server_free(server);
    server = NULL;

    /* The error can be copied out, and a zero-length buffer says how much is needed. */
    size_t needed = 0;
    EXPECT_STATUS(tidings_last_error_copy(NULL, 0, &needed), TIDINGS_ERR_BUFFER_TOO_SMALL);
    EXPECT(needed == strlen(tidings_last_error()));
    char *copy = (char *)malloc(needed + 1);
    size_t length = 0;
    EXPECT_STATUS(tidings_last_error_copy(copy, needed + 1, &length), TIDINGS_OK);
    EXPECT(length == needed && strcmp(copy, tidings_last_error()) == 0);
    free(copy);

    tidings_server_free(NULL);
    tidings_channel_free(NULL);
    tidings_stream_free(NULL);
    EXPECT(tidings_channel_subscribers(NULL) == 0);
    EXPECT(tidings_stream_is_closed(NULL));
}

static void test_routes_events_and_lifecycle(void) {
    tidings_config config = tidings_config_default();
    config.port = 0;
    config.drain_timeout_ms = 2000;
    tidings_server *server = NULL;
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_OK);

    /* A server without TLS has no certificate to reload. */
    EXPECT_STATUS(tidings_server_reload_tls(server), TIDINGS_ERR_INVALID_CONFIG);
    EXPECT_ERROR_MENTIONS("tls_cert");

    tidings_channel *channel = NULL;
    EXPECT_STATUS(tidings_server_channel(server, NULL, NULL, &channel), TIDINGS_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(tidings_server_channel(server, "nope", NULL, &channel), TIDINGS_ERR_INVALID_PATH);
    EXPECT_STATUS(tidings_server_channel(server, "/c", NULL, &channel), TIDINGS_OK);
    tidings_channel *again = NULL;
    EXPECT_STATUS(tidings_server_channel(server, "/c", NULL, &again), TIDINGS_ERR_ROUTE_EXISTS);
    EXPECT_STATUS(tidings_server_page(server, "/", "/no/such/page.html"), TIDINGS_ERR_FILE);
    EXPECT_ERROR_MENTIONS("/no/such/page.html");
    EXPECT_STATUS(tidings_server_stream(server, "/s", NULL, NULL, NULL), TIDINGS_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(tidings_server_stream(server, "/s", on_open, on_close, NULL), TIDINGS_OK);

    tidings_event bad_name = {.data = "x", .event = "two\nlines"};
    EXPECT_STATUS(tidings_channel_publish(channel, &bad_name), TIDINGS_ERR_INVALID_EVENT);
    EXPECT_ERROR_MENTIONS("`event`");
    tidings_event bad_id = {.data = "x", .id = "a\rb"};
    EXPECT_STATUS(tidings_channel_publish(channel, &bad_id), TIDINGS_ERR_INVALID_EVENT);
    EXPECT_ERROR_MENTIONS("`id`");
    tidings_event bad_utf8 = {.data = "\xc3\x28"};
    EXPECT_STATUS(tidings_channel_publish(channel, &bad_utf8), TIDINGS_ERR_INVALID_UTF8);
    EXPECT_STATUS(tidings_channel_publish(channel, NULL), TIDINGS_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(tidings_channel_publish(NULL, &bad_name), TIDINGS_ERR_NULL_ARGUMENT);

    uint16_t port = 0;
    EXPECT_STATUS(tidings_server_start(server, &port), TIDINGS_OK);
    EXPECT(port != 0 && tidings_server_port(server) == port);
    EXPECT_STATUS(tidings_server_start(server, NULL), TIDINGS_ERR_ALREADY_RUNNING);

    tidings_config taken = tidings_config_default();
    taken.port = port;
    tidings_server *other = NULL;
    EXPECT_STATUS(tidings_server_new(&taken, &other), TIDINGS_OK);
    EXPECT_STATUS(tidings_server_start(other, NULL), TIDINGS_ERR_BIND);
    EXPECT_ERROR_MENTIONS("127.0.0.1:");
    tidings_server_free(other);

    /* Servers that offer to share a port (reuse_port) can both listen on it. */
    tidings_config sharing = tidings_config_default();
    EXPECT(!sharing.reuse_port);
    sharing.port = 0;
    sharing.reuse_port = true;
    tidings_server *first = NULL, *second = NULL;
    EXPECT_STATUS(tidings_server_new(&sharing, &first), TIDINGS_OK);
    uint16_t shared = 0;
    EXPECT_STATUS(tidings_server_start(first, &shared), TIDINGS_OK);
    sharing.port = shared;
    EXPECT_STATUS(tidings_server_new(&sharing, &second), TIDINGS_OK);
    uint16_t also = 0;
    EXPECT_STATUS(tidings_server_start(second, &also), TIDINGS_OK);
    EXPECT(also == shared);
    EXPECT_STATUS(tidings_server_stop(first, NULL), TIDINGS_OK);
    EXPECT_STATUS(tidings_server_stop(second, NULL), TIDINGS_OK);
    tidings_server_free(first);
    tidings_server_free(second);

    /* A stream: the request as the callback saw it, then misuse of the handle. */
    int client = open_get(port, "/s?name=ada");
    tidings_stream *stream = wait_for_stream();
    pthread_mutex_lock(&seen_lock);
    EXPECT(small_buffer_status == TIDINGS_ERR_BUFFER_TOO_SMALL && small_buffer_length == 3);
    EXPECT(strcmp(seen_name, "ada") == 0);
    EXPECT(missing_status == TIDINGS_ERR_NOT_FOUND);
    EXPECT(strcmp(seen_header, "yes") == 0);
    EXPECT(strcmp(seen_last_id, "41") == 0);
    EXPECT(strcmp(seen_path, "/s") == 0);
    pthread_mutex_unlock(&seen_lock);

    tidings_event hello = {.data = "hello"};
    EXPECT_STATUS(tidings_stream_send(stream, NULL), TIDINGS_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(tidings_stream_try_send(stream, &hello), TIDINGS_OK);
    EXPECT_STATUS(tidings_stream_reject(stream, 400, "too late"), TIDINGS_ERR_ALREADY_ACCEPTED);
    EXPECT(tidings_stream_id(stream) != 0);
    EXPECT_STATUS(tidings_stream_close(stream), TIDINGS_OK);
    EXPECT_STATUS(tidings_stream_send(stream, &hello), TIDINGS_ERR_DISCONNECTED);
    EXPECT_STATUS(tidings_stream_try_send(stream, &hello), TIDINGS_ERR_DISCONNECTED);
    EXPECT(tidings_stream_is_closed(stream));
    uint64_t id = tidings_stream_id(stream);
    tidings_stream_free(stream);
    for (int tries = 0; tries < 500; tries++) {
        pthread_mutex_lock(&seen_lock);
        int done = closes == 1;
        pthread_mutex_unlock(&seen_lock);
        if (done) {
            break;
        }
        pause_ms(10);
    }
    pthread_mutex_lock(&seen_lock);
    EXPECT(closes == 1 && closed_id == id);
    pthread_mutex_unlock(&seen_lock);
    close(client);

    /* A stream rejected before anything was sent. */
    client = open_get(port, "/s?name=x");
    stream = wait_for_stream();
    EXPECT_STATUS(tidings_stream_reject(stream, 200, "not an error"), TIDINGS_ERR_INVALID_STATUS);
    EXPECT_STATUS(tidings_stream_reject(stream, 400, "name is required"), TIDINGS_OK);
    EXPECT_STATUS(tidings_stream_try_send(stream, &hello), TIDINGS_ERR_DISCONNECTED);
    char reply[512] = {0};
    size_t got = 0;
    for (int tries = 0; tries < 100 && !strstr(reply, "name is required"); tries++) {
        ssize_t n = read(client, reply + got, sizeof reply - 1 - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    EXPECT(strncmp(reply, "HTTP/1.1 400", 12) == 0 && strstr(reply, "name is required") != NULL);
    tidings_stream_free(stream);
    close(client);

    /* Stop with streams and subscribers still open. */
    int subscriber = open_get(port, "/c");
    int streamer = open_get(port, "/s?name=held");
    stream = wait_for_stream();
    EXPECT_STATUS(tidings_stream_accept(stream), TIDINGS_OK);
    for (int tries = 0; tries < 500 && tidings_channel_subscribers(channel) < 1; tries++) {
        pause_ms(10);
    }
    EXPECT(tidings_channel_subscribers(channel) == 1);
    tidings_event farewell = {.data = "bye", .event = "shutdown"};
    EXPECT_STATUS(tidings_server_stop(server, &farewell), TIDINGS_OK);
    EXPECT_STATUS(tidings_server_stop(server, NULL), TIDINGS_OK);
    EXPECT_STATUS(tidings_channel_publish(channel, &hello), TIDINGS_ERR_STOPPED);
    EXPECT_STATUS(tidings_stream_send(stream, &hello), TIDINGS_ERR_DISCONNECTED);
    EXPECT_STATUS(tidings_server_start(server, NULL), TIDINGS_ERR_STOPPED);
    EXPECT(tidings_server_port(server) == 0);
    tidings_stream_free(stream);
    close(subscriber);
    close(streamer);

    tidings_channel_free(channel);
    tidings_server_free(server);
}

/* Reads from `fd` until `needle` has been seen (or 2 s pass); returns what came. */
static void read_until(int fd, char *buffer, size_t capacity, const char *needle) {
    size_t got = 0;
    buffer[0] = '\0';
    for (int tries = 0; tries < 200 && !strstr(buffer, needle) && got + 1 < capacity; tries++) {
        ssize_t n = read(fd, buffer + got, capacity - 1 - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        buffer[got] = '\0';
    }
}

/* A route whose replies are answered on the engine thread, or kept for later. */
static tidings_reply *kept_reply = NULL;
static tidings_status invalid_status = TIDINGS_OK, second_send = TIDINGS_OK, null_body = TIDINGS_OK;

static void on_request(void *user_data, const tidings_request *request, tidings_reply *reply) {
    (void)user_data;
    const char *path = tidings_request_path(request);
    if (strcmp(path, "/later") == 0) {
        pthread_mutex_lock(&seen_lock);
        kept_reply = reply;
        pthread_mutex_unlock(&seen_lock);
        return;
    }
    if (strcmp(path, "/unanswered") == 0) {
        tidings_reply_free(reply); /* answers 500 */
        return;
    }
    pthread_mutex_lock(&seen_lock);
    invalid_status = tidings_reply_send(reply, 99, NULL, (const uint8_t *)"x", 1);
    null_body = tidings_reply_send(reply, 200, NULL, NULL, 5);
    static const uint8_t body[] = {'m', 'a', 'd', 'e', ' ', 'i', 'n', ' ', 'C'};
    tidings_reply_send(reply, 201, "text/plain; charset=utf-8", body, sizeof body);
    second_send = tidings_reply_send(reply, 200, NULL, body, sizeof body);
    pthread_mutex_unlock(&seen_lock);
    tidings_reply_free(reply);
}

/* Presence: counts and the path each hook saw. */
static int joined = 0, left = 0;
static char joined_path[32];

static void on_join(void *user_data, const tidings_request *request) {
    (void)user_data;
    pthread_mutex_lock(&seen_lock);
    joined++;
    snprintf(joined_path, sizeof joined_path, "%s", tidings_request_path(request));
    pthread_mutex_unlock(&seen_lock);
}

static void on_leave(void *user_data, const tidings_request *request) {
    (void)user_data;
    (void)request;
    pthread_mutex_lock(&seen_lock);
    left++;
    pthread_mutex_unlock(&seen_lock);
}

static int wait_for_count(int *counter, int expected) {
    for (int tries = 0; tries < 500; tries++) {
        pthread_mutex_lock(&seen_lock);
        int now = *counter;
        pthread_mutex_unlock(&seen_lock);
        if (now == expected) {
            return 1;
        }
        pause_ms(10);
    }
    return 0;
}

static void test_route_handlers_presence_hooks_and_sized_data(void) {
    tidings_channel_options defaults = tidings_channel_options_default();
    EXPECT(defaults.keepalive_ms == TIDINGS_KEEPALIVE_SERVER);

    tidings_config config = tidings_config_default();
    config.port = 0;
    tidings_server *server = NULL;
    EXPECT_STATUS(tidings_server_new(&config, &server), TIDINGS_OK);
    EXPECT_STATUS(tidings_server_route(server, "/r", NULL, NULL), TIDINGS_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(tidings_server_route(server, "/r", on_request, NULL), TIDINGS_OK);
    EXPECT_STATUS(tidings_server_route(server, "/later", on_request, NULL), TIDINGS_OK);
    EXPECT_STATUS(tidings_server_route(server, "/unanswered", on_request, NULL), TIDINGS_OK);
    EXPECT_STATUS(tidings_server_route(server, "/r", on_request, NULL), TIDINGS_ERR_ROUTE_EXISTS);
    tidings_channel *channel = NULL;
    tidings_channel_options quiet = tidings_channel_options_default();
    quiet.keepalive_ms = 0; /* none on this channel */
    EXPECT_STATUS(tidings_server_channel(server, "/c", &quiet, &channel), TIDINGS_OK);
    EXPECT_STATUS(tidings_channel_on_subscribe(channel, NULL, NULL), TIDINGS_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(tidings_channel_on_subscribe(NULL, on_join, NULL), TIDINGS_ERR_NULL_ARGUMENT);
    EXPECT_STATUS(tidings_channel_on_subscribe(channel, on_join, NULL), TIDINGS_OK);
    EXPECT_STATUS(tidings_channel_on_unsubscribe(channel, on_leave, NULL), TIDINGS_OK);
    uint16_t port = 0;
    EXPECT_STATUS(tidings_server_start(server, &port), TIDINGS_OK);

    /* A reply answered in the callback: bad status and NULL body refused, then once. */
    char reply[1024];
    int client = open_get(port, "/r");
    read_until(client, reply, sizeof reply, "made in C");
    EXPECT(strncmp(reply, "HTTP/1.1 201", 12) == 0 && strstr(reply, "\r\n\r\nmade in C") != NULL);
    pthread_mutex_lock(&seen_lock);
    EXPECT(invalid_status == TIDINGS_ERR_INVALID_STATUS);
    EXPECT(null_body == TIDINGS_ERR_NULL_ARGUMENT);
    EXPECT(second_send == TIDINGS_ERR_ALREADY_ANSWERED);
    pthread_mutex_unlock(&seen_lock);
    close(client);

    /* A reply kept and answered later from this thread; one freed unanswered is a 500. */
    client = open_get(port, "/later");
    tidings_reply *later = NULL;
    for (int tries = 0; tries < 500 && later == NULL; tries++) {
        pthread_mutex_lock(&seen_lock);
        later = kept_reply;
        pthread_mutex_unlock(&seen_lock);
        pause_ms(10);
    }
    EXPECT(later != NULL);
    EXPECT_STATUS(tidings_reply_send(later, 200, "application/json", (const uint8_t *)"{}", 2), TIDINGS_OK);
    tidings_reply_free(later);
    read_until(client, reply, sizeof reply, "{}");
    EXPECT(strncmp(reply, "HTTP/1.1 200", 12) == 0 && strstr(reply, "application/json") != NULL);
    close(client);
    client = open_get(port, "/unanswered");
    read_until(client, reply, sizeof reply, "\r\n\r\n");
    EXPECT(strncmp(reply, "HTTP/1.1 500", 12) == 0);
    close(client);
    EXPECT_STATUS(tidings_reply_send(NULL, 200, NULL, NULL, 0), TIDINGS_ERR_NULL_ARGUMENT);
    tidings_reply_free(NULL);

    /* Presence hooks fire once per subscriber, with its request. */
    int subscriber = open_get(port, "/c?who=c");
    EXPECT(wait_for_count(&joined, 1));
    pthread_mutex_lock(&seen_lock);
    EXPECT(strcmp(joined_path, "/c") == 0);
    pthread_mutex_unlock(&seen_lock);

    /* Data with a length may hold NUL bytes; without one it is NUL-terminated. */
    tidings_event sized = {.data = "a\0b", .data_len = 3};
    EXPECT_STATUS(tidings_channel_publish(channel, &sized), TIDINGS_OK);
    tidings_event no_data = {.data = NULL, .data_len = 4};
    EXPECT_STATUS(tidings_channel_publish(channel, &no_data), TIDINGS_ERR_NULL_ARGUMENT);
    tidings_event bad_sized = {.data = "\xc3\x28", .data_len = 2};
    EXPECT_STATUS(tidings_channel_publish(channel, &bad_sized), TIDINGS_ERR_INVALID_UTF8);
    char stream_bytes[1024] = {0};
    size_t got = 0;
    for (int tries = 0; tries < 200; tries++) {
        ssize_t n = read(subscriber, stream_bytes + got, sizeof stream_bytes - 1 - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        if (got >= 11 && memcmp(stream_bytes + got - 11, "data: a\0b\n\n", 11) == 0) {
            break;
        }
    }
    EXPECT(got >= 11 && memcmp(stream_bytes + got - 11, "data: a\0b\n\n", 11) == 0);
    close(subscriber);
    EXPECT(wait_for_count(&left, 1));

    EXPECT_STATUS(tidings_server_stop(server, NULL), TIDINGS_OK);
    tidings_channel_free(channel);
    tidings_server_free(server);
}

int main(void) {
    test_version_and_status_names();
    test_bad_arguments_and_config();
    test_routes_events_and_lifecycle();
    test_route_handlers_presence_hooks_and_sized_data();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
