/*
 * Time, randomness, hex, number parsing and atomic file writes (see util.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/util.h"

int64_t util_now(void)
{
	return (int64_t)time(NULL);
}

int64_t util_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t util_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

iotp_rc util_random(void *p, size_t n, struct iotp_err *err)
{
	if (n > INT_MAX || RAND_bytes(p, (int)n) != 1)
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "random bytes");
	return IOTP_OK;
}

void util_hex(const void *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

int util_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int util_b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

iotp_rc util_uuid(char out[37], struct iotp_err *err)
{
	unsigned char b[16];
	char hex[33];
	iotp_rc rc;

	struct timespec ts;
	uint64_t ms;

	if ((rc = util_random(b, sizeof(b), err)) != IOTP_OK)
		return rc;
	/* Version 7 (RFC 9562): 48 bits of Unix milliseconds first, so ids made
	 * one after the other sort together and a unique index on them grows
	 * at its end instead of touching a random page per insert (bulk
	 * registration of a million things); 74 random bits after. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	util_hex(b, sizeof(b), hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
	         hex + 20);
	return IOTP_OK;
}

size_t util_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size > 0) {
		size_t c = n < size - 1 ? n : size - 1;

		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

iotp_rc util_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return IOTP_ERR_INVALID;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return IOTP_ERR_INVALID;
	*out = (int64_t)v;
	return IOTP_OK;
}

int util_secure_eq(const void *a, size_t alen, const void *b, size_t blen)
{
	if (alen != blen)
		return 0;
	return CRYPTO_memcmp(a, b, alen) == 0;
}

iotp_rc util_write_file(const char *path, const void *data, size_t len, mode_t mode,
                        struct iotp_err *err)
{
	char tmp[4096];
	int fd = -1;
	const char *p = data;
	iotp_rc rc = IOTP_OK;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= sizeof(tmp))
		return iotp_err_set(err, IOTP_ERR_INVALID, "path too long: %s", path);
	fd = mkstemp(tmp);
	if (fd < 0)
		return iotp_err_set(err, IOTP_ERR_IO, "create %s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "chmod %s: %s", tmp, strerror(errno));
		goto out;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = iotp_err_set(err, IOTP_ERR_IO, "write %s: %s", tmp, strerror(errno));
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "rename %s to %s: %s", tmp, path,
		                  strerror(errno));
		goto out;
	}
out:
	if (fd >= 0)
		close(fd);
	if (rc != IOTP_OK)
		unlink(tmp);
	return rc;
}

iotp_rc util_read_file(const char *path, size_t max, char **out, size_t *len,
                       struct iotp_err *err)
{
	FILE *f;
	char *data = NULL;
	size_t n = 0, alloc = 0;
	iotp_rc rc = IOTP_OK;

	f = fopen(path, "rb");
	if (f == NULL)
		return iotp_err_set(err, errno == ENOENT ? IOTP_ERR_NOT_FOUND : IOTP_ERR_IO,
		                    "open %s: %s", path, strerror(errno));
	for (;;) {
		size_t got;

		if (n + 4096 + 1 > alloc) {
			size_t na = alloc ? alloc * 2 : 8192;
			char *p = realloc(data, na);

			if (p == NULL) {
				rc = iotp_err_set(err, IOTP_ERR_NOMEM, "read %s", path);
				goto out;
			}
			data = p;
			alloc = na;
		}
		got = fread(data + n, 1, alloc - n - 1, f);
		n += got;
		if (n > max) {
			rc = iotp_err_set(err, IOTP_ERR_TOO_BIG, "%s is larger than %zu bytes",
			                  path, max);
			goto out;
		}
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "read %s: %s", path, strerror(errno));
		goto out;
	}
	data[n] = '\0';
	*out = data;
	data = NULL;
	if (len != NULL)
		*len = n;
out:
	free(data);
	fclose(f);
	return rc;
}

iotp_rc util_mkdir(const char *path, mode_t mode, struct iotp_err *err)
{
	struct stat st;

	if (mkdir(path, mode) == 0)
		return IOTP_OK;
	if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return IOTP_OK;
	return iotp_err_set(err, IOTP_ERR_IO, "mkdir %s: %s", path, strerror(errno));
}
