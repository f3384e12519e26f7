/*
 * Level-checked logging to a replaceable sink (see log.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"

enum iotp_log_level iotp_log_threshold = IOTP_LOG_INFO;
static iotp_log_sink log_sink;
static void *log_sink_ud;

void iotp_log_set_level(enum iotp_log_level level)
{
	iotp_log_threshold = level;
}

iotp_rc iotp_log_level_parse(const char *s, enum iotp_log_level *out)
{
	static const char *names[] = {"debug", "info", "warn", "error", "none"};

	for (int i = 0; i < 5; i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*out = (enum iotp_log_level)i;
			return IOTP_OK;
		}
	}
	return IOTP_ERR_INVALID;
}

void iotp_log_set_sink(iotp_log_sink sink, void *ud)
{
	log_sink = sink;
	log_sink_ud = ud;
}

void iotp_log_write(enum iotp_log_level level, const char *fmt, ...)
{
	static const char *tags[] = {"debug", "info", "warn", "error", "none"};
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_sink != NULL) {
		log_sink(log_sink_ud, level, line);
		return;
	}
	{
		char ts[32];
		struct timespec now;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s %s\n", ts, now.tv_nsec / 1000000L,
		        tags[level <= IOTP_LOG_NONE ? level : IOTP_LOG_NONE], line);
	}
}
