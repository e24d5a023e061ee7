/*
 * tests/support/redis.h: a real redis-server for a test, on a free loopback port, in a
 * temporary directory, with nothing saved to disk; killed, paused, restarted on the same
 * port and stopped by the test. Every wait has a deadline.
 *
 * rrs_cmd speaks just enough RESP for a test's checks (a command as words, the reply's
 * first line, and for a bulk string its value).
 */
#ifndef RF_TESTS_SUPPORT_REDIS_H
#define RF_TESTS_SUPPORT_REDIS_H

#include <stdint.h>
#include <sys/types.h>

struct rrs {
    pid_t pid;     /* 0 while not running */
    uint16_t port;
    char dir[256]; /* temporary: the log and nothing else */
    char url[64];  /* redis://127.0.0.1:<port> */
};

/* Start on a free port; 0 once it answers PING (5 s at most), or -1 (log on stderr). */
int rrs_start(struct rrs *r);
/* Start again on the same port (after rrs_kill): 0 or -1. */
int rrs_restart(struct rrs *r);
/* SIGKILL and reap. */
void rrs_kill(struct rrs *r);
/* SIGSTOP / SIGCONT: a Redis that stops answering, then answers again. */
void rrs_pause(struct rrs *r);
void rrs_resume(struct rrs *r);
/* Kill if running, remove the directory. */
void rrs_stop(struct rrs *r);

/* Run one command given as words (NULL-terminated, borrowed); the reply's first line
 * without its CRLF into out, or for a bulk string its value. 0 or -1 (2 s at most). */
int rrs_cmd(const struct rrs *r, char *out, size_t cap, const char *const *words);

#endif
