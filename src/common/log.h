/*
 * Logging: one line per event. The level check happens in the macro, so
 * arguments below the current level are never formatted. The sink defaults
 * to stderr; the Mosquitto plugin installs one that forwards to
 * mosquitto_log_printf. Never pass a secret to these macros.
 */
#ifndef IOTP_LOG_H
#define IOTP_LOG_H

#include "common/err.h"

enum iotp_log_level {
	IOTP_LOG_DEBUG = 0,
	IOTP_LOG_INFO = 1,
	IOTP_LOG_WARN = 2,
	IOTP_LOG_ERROR = 3,
	IOTP_LOG_NONE = 4
};

typedef void (*iotp_log_sink)(void *ud, enum iotp_log_level level, const char *line);

extern enum iotp_log_level iotp_log_threshold;

/* Sets the minimum level written. Not thread-safe against concurrent logging:
 * call at start-up or on reload from the owning thread. */
void iotp_log_set_level(enum iotp_log_level level);
/* Parses "debug", "info", "warn", "error", "none". */
iotp_rc iotp_log_level_parse(const char *s, enum iotp_log_level *out);
/* Replaces the sink (NULL restores stderr). ud is borrowed and kept. */
void iotp_log_set_sink(iotp_log_sink sink, void *ud);

void iotp_log_write(enum iotp_log_level level, const char *fmt, ...) IOTP_PRINTF(2, 3);

#define IOTP_LOG(level, ...) \
	do { \
		if ((level) >= iotp_log_threshold) \
			iotp_log_write((level), __VA_ARGS__); \
	} while (0)
#define LOG_DEBUG(...) IOTP_LOG(IOTP_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) IOTP_LOG(IOTP_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) IOTP_LOG(IOTP_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) IOTP_LOG(IOTP_LOG_ERROR, __VA_ARGS__)

#endif
