/* The C ABI's contract on bad input and misuse: every case returns the
 * documented status and message, nothing crashes, nothing leaks. Built with
 * -Werror as C and as C++, and run plain, under ASan+UBSan, and under
 * valgrind by tests/test_c_abi.py. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

int main(void) {
    test_version_and_status_names();
    test_bad_arguments_and_config();
    test_routes_events_and_lifecycle();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
