/*
 * The import directory of bulk registration (see bulk.h): where the input
 * file named by a task's bucket and key lives, and chunked writes for
 * uploads. Names are checked so that nothing outside the directory can be
 * read or written: the model's character sets, no empty, "." or ".."
 * segment, and the final path is checked again after resolving symbolic
 * links.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "core/bulk.h"

static int bucket_ok(const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > BULK_BUCKET_MAX || strspn(b, ".") == n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* [a-zA-Z0-9!_.*'()-/]{1,1024} without empty, "." or ".." segments. */
static int key_ok(const char *k)
{
	size_t n = strlen(k), seg = 0;

	if (n < 1 || n > BULK_KEY_MAX || k[0] == '/')
		return 0;
	for (size_t i = 0; i <= n; i++) {
		char c = k[i];

		if (c == '/' || c == '\0') {
			size_t len = i - seg;

			if (len == 0 || (len == 1 && k[seg] == '.') ||
			    (len == 2 && k[seg] == '.' && k[seg + 1] == '.'))
				return 0;
			seg = i + 1;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("!_.*'()-", c) != NULL))
			return 0;
	}
	return 1;
}

/* 1 when path (below dir) resolves inside dir. Symbolic links inside the
 * import directory may point anywhere the operator chose; what a client
 * names must still resolve inside it. A path that does not exist yet (an
 * upload) is judged by its deepest existing ancestor, so that a linked
 * directory cannot carry a new file out either. A dir that does not exist
 * holds nothing yet: nothing to escape through. */
static int resolves_inside(const char *dir, const char *path)
{
	char real_dir[PATH_MAX], real[PATH_MAX], probe[PATH_MAX];
	size_t n, dlen = strlen(dir);
	int whole = 1;
	struct stat st;

	if (realpath(dir, real_dir) == NULL)
		return errno == ENOENT;
	if (util_strlcpy(probe, path, sizeof(probe)) >= sizeof(probe))
		return 0;
	while (realpath(probe, real) == NULL) {
		char *slash = strrchr(probe, '/');

		/* ENOENT from an entry that exists is a dangling link */
		if (errno != ENOENT || lstat(probe, &st) == 0 || slash == NULL ||
		    (size_t)(slash - probe) < dlen)
			return 0;
		*slash = '\0';
		whole = 0;
	}
	n = strlen(real_dir);
	if (strncmp(real, real_dir, n) != 0)
		return 0;
	/* the file itself strictly inside; an ancestor may be dir itself */
	return real[n] == '/' || (!whole && real[n] == '\0');
}

static iotp_rc import_dir(const struct iotp_conf *conf, char *out, size_t size,
                          struct iotp_err *err)
{
	return conf_path(conf, conf->prov_import_dir, out, size, err);
}

iotp_rc bulk_input_path(const struct iotp_conf *conf, const char *bucket, const char *key,
                        char *out, size_t size, struct iotp_err *err)
{
	char dir[CONF_STR_MAX * 2];
	iotp_rc rc;

	if (bucket == NULL || !bucket_ok(bucket))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "inputFileBucket must be 3 to 256 characters of [a-zA-Z0-9._-] "
		                    "and not only dots");
	if (key == NULL || !key_ok(key))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "inputFileKey must be 1 to 1024 characters of "
		                    "[a-zA-Z0-9!_.*'()-/] without empty, '.' or '..' segments");
	if ((rc = import_dir(conf, dir, sizeof(dir), err)) != IOTP_OK)
		return rc;
	if ((size_t)snprintf(out, size, "%s/%s/%s", dir, bucket, key) >= size)
		return iotp_err_set(err, IOTP_ERR_INVALID, "input file path too long");
	if (!resolves_inside(dir, out))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "input file %s/%s resolves outside the import directory", bucket,
		                    key);
	return IOTP_OK;
}

/* Creates every directory of path's parent below the import directory. */
static iotp_rc make_parents(const char *path, size_t base_len, struct iotp_err *err)
{
	char tmp[CONF_STR_MAX * 3];
	size_t n = util_strlcpy(tmp, path, sizeof(tmp));

	if (n >= sizeof(tmp))
		return iotp_err_set(err, IOTP_ERR_INVALID, "input file path too long");
	for (size_t i = base_len; i < n; i++) {
		if (tmp[i] != '/')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return iotp_err_set(err, IOTP_ERR_IO, "cannot create %s: %s", tmp,
			                    strerror(errno));
		tmp[i] = '/';
	}
	return IOTP_OK;
}

iotp_rc bulk_input_write(const struct iotp_conf *conf, const char *bucket, const char *key,
                         int64_t offset, const void *data, size_t len, int64_t *size_after,
                         struct iotp_err *err)
{
	char dir[CONF_STR_MAX * 2], path[CONF_STR_MAX * 3];
	const char *p = data;
	struct stat sb;
	int fd = -1;
	iotp_rc rc;

	if (offset < 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "offset must not be negative");
	if ((rc = import_dir(conf, dir, sizeof(dir), err)) != IOTP_OK ||
	    (rc = util_mkdir(dir, 0700, err)) != IOTP_OK ||
	    (rc = bulk_input_path(conf, bucket, key, path, sizeof(path), err)) != IOTP_OK ||
	    (rc = make_parents(path, strlen(dir) + 1, err)) != IOTP_OK)
		return rc;
	/* Directories created just now: check the resolved path again. */
	if ((rc = bulk_input_path(conf, bucket, key, path, sizeof(path), err)) != IOTP_OK)
		return rc;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (offset == 0 ? O_TRUNC : 0),
	          0600);
	if (fd < 0)
		return iotp_err_set(err, IOTP_ERR_IO, "cannot write input file %s/%s: %s", bucket, key,
		                    strerror(errno));
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "input file %s/%s is not a regular file", bucket,
		                  key);
		goto out;
	}
	if ((int64_t)sb.st_size != offset) {
		rc = iotp_err_set(err, IOTP_ERR_CONFLICT,
		                  "offset %lld does not match the size of %s/%s (%lld bytes): "
		                  "continue at %lld",
		                  (long long)offset, bucket, key, (long long)sb.st_size,
		                  (long long)sb.st_size);
		goto out;
	}
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, (off_t)offset);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = iotp_err_set(err, IOTP_ERR_IO, "write %s/%s: %s", bucket, key,
			                  strerror(errno));
			goto out;
		}
		p += w;
		len -= (size_t)w;
		offset += w;
	}
	*size_after = offset;
out:
	close(fd);
	return rc;
}
