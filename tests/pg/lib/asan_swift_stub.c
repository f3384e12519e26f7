/*
 * Preloaded next to the ASan runtime into the (uninstrumented) mosquitto of
 * a sanitizer build, by tests/pg/lib/deploy.py; not part of any product.
 *
 * Why: with the runtime preloaded rather than linked, ASan initialises on
 * the first malloc, which happens inside libgpg-error's constructor while
 * it holds glibc's gettext lock for writing (bindtextdomain). Part of that
 * initialisation is dlsym(RTLD_DEFAULT, "swift_demangle"); when the symbol
 * is missing, dlerror() translates its message, taking the same lock for
 * reading, which leaves the lock's reader count broken. The next
 * bindtextdomain -- libpq's, on its first connection -- then waits forever,
 * so a broker on PostgreSQL hangs at start. Defining the symbol makes the
 * lookup succeed: no message, no gettext, a sane lock. ASan calls it only
 * to demangle Swift names in reports; "no demangling" (NULL) is a valid
 * answer.
 */
#include <stddef.h>

char *swift_demangle(const char *mangled, size_t mangled_len, char *out, size_t *out_len,
                     unsigned flags);

char *swift_demangle(const char *mangled, size_t mangled_len, char *out, size_t *out_len,
                     unsigned flags)
{
	(void)mangled;
	(void)mangled_len;
	(void)out;
	(void)out_len;
	(void)flags;
	return NULL;
}
