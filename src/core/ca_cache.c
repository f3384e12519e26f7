/*
 * The parsed-CA cache (see ca_cache.h): a small array under one mutex,
 * least recently used entry replaced. A lookup compares the id (when given)
 * and then the whole PEM text, so a hit is exactly a repeat of an earlier
 * parse. The
 * parse of a miss runs outside the lock: two threads missing together both
 * parse, and the second one's insert finds the entry present and keeps it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/ca_cache.h"
#include "core/pki.h"

struct ca_entry {
	char id[PKI_CERT_ID_LEN + 1];
	char *pem;          /* owned copy of the parsed text */
	size_t pem_len;
	X509 *x509;         /* owned reference */
	unsigned long used; /* tick of the last hit */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ca_entry cache[CA_CACHE_SLOTS];
static unsigned long cache_tick;

static struct ca_entry *find(const char *id, const char *pem, size_t pem_len)
{
	for (size_t i = 0; i < CA_CACHE_SLOTS; i++) {
		struct ca_entry *e = &cache[i];

		if (e->x509 != NULL && e->pem_len == pem_len && (id == NULL || strcmp(e->id, id) == 0) &&
		    memcmp(e->pem, pem, pem_len) == 0)
			return e;
	}
	return NULL;
}

static void entry_clear(struct ca_entry *e)
{
	X509_free(e->x509);
	free(e->pem);
	memset(e, 0, sizeof(*e));
}

iotp_rc ca_cache_get(const char *id, const char *pem, size_t pem_len, X509 **out,
                     struct iotp_err *err)
{
	struct ca_entry *e, *victim;
	X509 *x = NULL;
	char *copy;
	iotp_rc rc;

	if ((id != NULL && strlen(id) > PKI_CERT_ID_LEN) || pem == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "CA cache: bad id or no PEM");
	pthread_mutex_lock(&cache_lock);
	e = find(id, pem, pem_len);
	if (e != NULL) {
		e->used = ++cache_tick;
		X509_up_ref(e->x509);
		*out = e->x509;
		pthread_mutex_unlock(&cache_lock);
		return IOTP_OK;
	}
	pthread_mutex_unlock(&cache_lock);

	if ((rc = pki_cert_parse(pem, pem_len, &x, err)) != IOTP_OK)
		return rc;
	copy = malloc(pem_len + 1);
	if (copy == NULL) {
		/* Still a good answer, just not remembered. */
		*out = x;
		return IOTP_OK;
	}
	memcpy(copy, pem, pem_len);
	copy[pem_len] = '\0';

	pthread_mutex_lock(&cache_lock);
	if (find(id, pem, pem_len) == NULL) {
		victim = &cache[0];
		for (size_t i = 1; i < CA_CACHE_SLOTS && victim->x509 != NULL; i++) {
			if (cache[i].x509 == NULL || cache[i].used < victim->used)
				victim = &cache[i];
		}
		entry_clear(victim);
		util_strlcpy(victim->id, id != NULL ? id : "", sizeof(victim->id));
		victim->pem = copy;
		victim->pem_len = pem_len;
		X509_up_ref(x);
		victim->x509 = x;
		victim->used = ++cache_tick;
		copy = NULL;
	}
	pthread_mutex_unlock(&cache_lock);
	free(copy);
	*out = x;
	return IOTP_OK;
}

void ca_cache_clear(void)
{
	pthread_mutex_lock(&cache_lock);
	for (size_t i = 0; i < CA_CACHE_SLOTS; i++)
		entry_clear(&cache[i]);
	pthread_mutex_unlock(&cache_lock);
}
