/*
 * Authorization (MOSQ_EVT_ACL_CHECK): every publish, subscribe and delivery
 * is one policy_eval() against the connection's compiled policies:
 *
 *   MOSQ_ACL_WRITE      iot:Publish   topic/<topic>  (+ iot:RetainPublish when retained)
 *   MOSQ_ACL_READ       iot:Receive   topic/<topic>
 *   MOSQ_ACL_SUBSCRIBE  iot:Subscribe topicfilter/<filter>
 *   MOSQ_ACL_UNSUBSCRIBE always allowed (it only takes access away)
 *
 * Fleet-provisioning request topics are never delivered to anyone: the
 * plugin consumes them (fleet.c) and they may carry ownership tokens.
 *
 * Decisions are cached per connection in a small direct-mapped table. The
 * change feed marks connections stale: all of them (pl->policy_gen) when a
 * policy document or a group's policies change, only those of one
 * certificate or one thing when an attachment, a thing or its groups
 * change. A stale connection reloads its policies (and thing variables) at
 * its next check and starts a new cache, so an edit applies to connected
 * clients within the feed's poll interval.
 */
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "common/log.h"
#include "plugin/plugin.h"

static size_t slot_of(enum policy_action action, const char *s)
{
	size_t h = 1469598103934665603ULL ^ (size_t)action;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h % CONN_CACHE_SLOTS;
}

enum policy_decision acl_decide(struct plugin *pl, struct conn *c, enum policy_action action,
                                const char *resource_part)
{
	struct conn_decision *d = &c->cache[slot_of(action, resource_part)];
	char stack[512], *arn = stack;
	struct policy_ctx ctx;
	enum policy_decision dec;
	size_t need;

	if (d->resource != NULL && d->action == (unsigned char)action &&
	    strcmp(d->resource, resource_part) == 0)
		return d->allow ? POLICY_ALLOW : POLICY_DENY;
	need = strlen("arn:aws:iot:") + strlen(pl->conf.region) + 1 + strlen(pl->conf.account_id) +
	       1 + strlen(resource_part) + 1;
	if (need > sizeof(stack) && (arn = malloc(need)) == NULL)
		return POLICY_DENY;
	snprintf(arn, need, "arn:aws:iot:%s:%s:%s", pl->conf.region, pl->conf.account_id,
	         resource_part);
	policy_ctx_init(&ctx);
	for (size_t i = 0; i < POLICY_VAR_COUNT; i++)
		ctx.var[i] = c->vars[i];
	ctx.attrs = c->attrs;
	ctx.n_attrs = c->n_attrs;
	dec = policy_eval((const struct policy *const *)c->policies, c->n_policies, action, arn,
	                  &ctx);
	if (arn != stack)
		free(arn);
	/* a failed strdup only costs the cache entry */
	free(d->resource);
	d->resource = strdup(resource_part);
	d->action = (unsigned char)action;
	d->allow = dec == POLICY_ALLOW;
	return dec;
}

int acl_check(struct plugin *pl, struct mosquitto *client, int access, const char *topic,
              int retain)
{
	struct conn *c = conn_map_find(&pl->conns, client);
	struct iotp_err err;
	enum policy_action action;
	const char *kind;
	char stack[512], *part = stack;
	size_t need;
	int allow;

	if (access == MOSQ_ACL_UNSUBSCRIBE)
		return MOSQ_ERR_SUCCESS;
	if (c == NULL || c->kicked || topic == NULL)
		return MOSQ_ERR_ACL_DENIED;
	if ((c->gen != pl->policy_gen || c->stale) && auth_load_policies(pl, c, &err) != IOTP_OK) {
		LOG_ERROR("broker: client %s: reloading policies failed, denying: %s", c->client_id,
		          err.msg);
		return MOSQ_ERR_ACL_DENIED;
	}
	if (access == MOSQ_ACL_READ) {
		struct fleet_topic ft;

		if (fleet_topic_parse(topic, &ft))
			return MOSQ_ERR_ACL_DENIED;
	}
	switch (access) {
	case MOSQ_ACL_WRITE:
		action = POLICY_ACTION_PUBLISH;
		kind = "topic/";
		break;
	case MOSQ_ACL_READ:
		action = POLICY_ACTION_RECEIVE;
		kind = "topic/";
		break;
	case MOSQ_ACL_SUBSCRIBE:
		action = POLICY_ACTION_SUBSCRIBE;
		kind = "topicfilter/";
		break;
	default:
		return MOSQ_ERR_ACL_DENIED;
	}
	need = strlen(kind) + strlen(topic) + 1;
	if (need > sizeof(stack) && (part = malloc(need)) == NULL)
		return MOSQ_ERR_ACL_DENIED;
	snprintf(part, need, "%s%s", kind, topic);
	allow = acl_decide(pl, c, action, part) == POLICY_ALLOW;
	if (allow && retain && access == MOSQ_ACL_WRITE) {
		action = POLICY_ACTION_RETAIN_PUBLISH;
		allow = acl_decide(pl, c, action, part) == POLICY_ALLOW;
	}
	if (!allow && access == MOSQ_ACL_READ)
		LOG_DEBUG("broker: client %s: %s on %s denied", c->client_id,
		          policy_action_name(action), part);
	else if (!allow)
		LOG_INFO("broker: client %s: %s on %s denied", c->client_id,
		         policy_action_name(action), part);
	if (part != stack)
		free(part);
	return allow ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
}
