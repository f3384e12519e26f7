/*
 * The plugin's table of authenticated connections, keyed by client id.
 * Mosquitto allows one connected client per id, so the id is the natural
 * key for kicking; the mosquitto context pointer is kept only to tell the
 * live connection from an older one that a session takeover replaced.
 */
#include <stdlib.h>
#include <string.h>

#include <mosquitto_broker.h>

#include "plugin/plugin.h"

static size_t hash_str(const char *s)
{
	size_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

iotp_rc conn_map_init(struct conn_map *m, size_t nbuckets, struct iotp_err *err)
{
	memset(m, 0, sizeof(*m));
	m->buckets = calloc(nbuckets, sizeof(*m->buckets));
	if (m->buckets == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "connection table: out of memory");
	m->nbuckets = nbuckets;
	return IOTP_OK;
}

void conn_map_cleanup(struct conn_map *m)
{
	for (size_t i = 0; m->buckets != NULL && i < m->nbuckets; i++) {
		struct conn *c = m->buckets[i], *next;

		for (; c != NULL; c = next) {
			next = c->next;
			conn_free(c);
		}
	}
	free(m->buckets);
	memset(m, 0, sizeof(*m));
}

struct conn *conn_map_get(struct conn_map *m, const char *id)
{
	struct conn *c;

	if (id == NULL)
		return NULL;
	for (c = m->buckets[hash_str(id) % m->nbuckets]; c != NULL; c = c->next)
		if (strcmp(c->client_id, id) == 0)
			return c;
	return NULL;
}

struct conn *conn_map_find(struct conn_map *m, const struct mosquitto *client)
{
	struct conn *c = conn_map_get(m, mosquitto_client_id(client));

	return c != NULL && c->client == client ? c : NULL;
}

void conn_map_put(struct conn_map *m, struct conn *c)
{
	struct conn **pp = &m->buckets[hash_str(c->client_id) % m->nbuckets];

	for (; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->client_id, c->client_id) == 0) {
			struct conn *old = *pp;

			c->next = old->next;
			*pp = c;
			conn_free(old);
			return;
		}
	}
	c->next = NULL;
	*pp = c;
	m->count++;
}

void conn_map_remove(struct conn_map *m, const struct mosquitto *client)
{
	const char *id = mosquitto_client_id(client);
	struct conn **pp;

	if (id == NULL)
		return;
	for (pp = &m->buckets[hash_str(id) % m->nbuckets]; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->client == client && strcmp((*pp)->client_id, id) == 0) {
			struct conn *c = *pp;

			*pp = c->next;
			conn_free(c);
			m->count--;
			return;
		}
	}
}

struct conn *conn_new(void)
{
	return calloc(1, sizeof(struct conn));
}

void conn_reset_policies(struct conn *c)
{
	for (size_t i = 0; i < c->n_policies; i++)
		policy_free(c->policies[i]);
	free(c->policies);
	c->policies = NULL;
	c->n_policies = 0;
	for (size_t i = 0; i < c->n_attrs; i++) {
		free((char *)c->attrs[i].name);
		free((char *)c->attrs[i].value);
	}
	free(c->attrs);
	c->attrs = NULL;
	c->n_attrs = 0;
	/* thing variables change with attachments; certificate ones do not */
	free(c->vars[POLICY_VAR_THING_NAME]);
	free(c->vars[POLICY_VAR_THING_TYPE_NAME]);
	free(c->vars[POLICY_VAR_THING_IS_ATTACHED]);
	c->vars[POLICY_VAR_THING_NAME] = NULL;
	c->vars[POLICY_VAR_THING_TYPE_NAME] = NULL;
	c->vars[POLICY_VAR_THING_IS_ATTACHED] = NULL;
	for (size_t i = 0; i < CONN_CACHE_SLOTS; i++) {
		free(c->cache[i].resource);
		c->cache[i].resource = NULL;
	}
	for (size_t i = 0; i < c->n_things; i++)
		free(c->things[i]);
	free(c->things);
	c->things = NULL;
	c->n_things = 0;
}

void conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	conn_reset_policies(c);
	for (size_t i = 0; i < POLICY_VAR_COUNT; i++)
		free(c->vars[i]);
	free(c->client_id);
	free(c->claim_template);
	free(c);
}
