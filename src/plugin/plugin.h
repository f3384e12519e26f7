/*
 * The iotprov Mosquitto plugin (plugin API v5), internal header.
 *
 * The plugin makes iotprov the broker's authority: it authenticates every
 * connection by its client certificate (auth.c), authorizes every publish,
 * subscribe and delivery with the policy engine (acl.c), serves the fleet-
 * provisioning MQTT API (fleet.c, payload codec in fleet_payload.c), and
 * follows the store's change feed to kick revoked devices and invalidate
 * cached decisions (feed.c).
 *
 * Threads: everything in struct plugin is owned by the broker's thread
 * except the two queues, which have their own locks. Work that writes the
 * store or may block (provisioning, webhooks, audit events, JITR) runs on
 * worker threads (work.c), each with its own iotp_core; results come back
 * through a queue the broker thread drains on MOSQ_EVT_TICK. The change feed
 * is polled by its own thread (feed.c), which queues what the broker thread
 * must do. No global state: mosquitto hands the struct plugin back as the
 * user data of every callback.
 */
#ifndef IOTP_PLUGIN_H
#define IOTP_PLUGIN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "common/conf.h"
#include "common/err.h"
#include "core/core.h"
#include "core/pki.h"
#include "core/policy.h"
#include "core/provision.h"
#include "plugin/fleet_payload.h"

struct mosquitto;
struct plugin;
struct webhook;

/* ------------------------------------------------------------------ */
/* Connections (conn.c)                                                */

#define CONN_CACHE_SLOTS 64 /* decisions cached per connection */

struct conn_decision {
	char *resource;              /* owned; NULL: empty slot */
	unsigned char action;        /* enum policy_action */
	unsigned char allow;
};

/* One authenticated connection. Keyed by client id (unique among connected
 * clients in a broker); `client` identifies the mosquitto context and is
 * compared, never dereferenced, so a stale entry can never be mistaken for
 * the live client. */
struct conn {
	struct conn *next;                   /* hash chain */
	const struct mosquitto *client;
	uint64_t serial;                     /* unique per authentication */
	char *client_id;                     /* owned */
	char cert_id[PKI_CERT_ID_LEN + 1];
	char ca_id[PKI_CERT_ID_LEN + 1];     /* "" when issued by iotprov */
	int claim;                           /* purpose CLAIM (trusted user) */
	char *claim_template;                /* owned, claim's template */
	char *vars[POLICY_VAR_COUNT];        /* owned variable values */
	struct policy_attr *attrs;           /* owned names and values */
	size_t n_attrs;
	struct policy **policies;            /* owned compiled policies */
	size_t n_policies;
	uint64_t gen;                        /* policy generation loaded */
	int stale;                           /* a change touched this connection */
	char **things;                       /* owned: things the cert is attached to */
	size_t n_things;
	int kicked;                          /* being disconnected: deny all */
	struct conn_decision cache[CONN_CACHE_SLOTS];
};

struct conn_map {
	struct conn **buckets;
	size_t nbuckets;
	size_t count;
};

iotp_rc conn_map_init(struct conn_map *m, size_t nbuckets, struct iotp_err *err);
/* Frees every connection. */
void conn_map_cleanup(struct conn_map *m);
/* The connection of client id `id`, or NULL. */
struct conn *conn_map_get(struct conn_map *m, const char *id);
/* The connection of this mosquitto context, NULL when it is not (or no
 * longer) the authenticated one. */
struct conn *conn_map_find(struct conn_map *m, const struct mosquitto *client);
/* Inserts c (ownership passes to the map), replacing and freeing any entry
 * of the same client id (session takeover). */
void conn_map_put(struct conn_map *m, struct conn *c);
/* Removes and frees the entry of client if it is the current one. */
void conn_map_remove(struct conn_map *m, const struct mosquitto *client);

struct conn *conn_new(void);
void conn_free(struct conn *c);
/* Drops compiled policies, thing variables and cached decisions. */
void conn_reset_policies(struct conn *c);

/* ------------------------------------------------------------------ */
/* Work queue and worker threads (work.c)                              */

enum job_kind {
	JOB_AUDIT,     /* append a broker.* event */
	JOB_JITR,      /* register an unknown certificate PENDING_ACTIVATION */
	JOB_FLEET,     /* a fleet-provisioning request */
	JOB_NOTIFY     /* POST a JITR registered event to [mqtt] jitr_webhook */
};

/* Queue link: first member of every queued item. */
struct qnode {
	struct qnode *next;
};

struct job {
	struct qnode node;
	enum job_kind kind;
	char *client_id;                 /* owned */
	uint64_t conn_serial;            /* JOB_FLEET: the requesting connection */
	char cert_id[PKI_CERT_ID_LEN + 1];
	/* JOB_AUDIT */
	char *action;                    /* owned, e.g. "broker.connect_refused" */
	char *reason;                    /* owned */
	/* JOB_JITR */
	char *cert_pem;                  /* owned */
	char ca_id[PKI_CERT_ID_LEN + 1];
	/* JOB_NOTIFY */
	char *body;                      /* owned: the event (JSON) */
	/* JOB_FLEET */
	struct fleet_topic topic;
	struct fleet_request req;
	int64_t t_start_ms;
};
void job_free(struct job *j);

/* What the broker thread does on the tick. */
enum result_kind {
	RESULT_PUBLISH,   /* publish payload on topic (to client_id or all) */
	RESULT_KICK_CERT, /* disconnect every client of cert_id */
	RESULT_KICK_CA,   /* disconnect every client whose certificate's CA is id */
	RESULT_INVALIDATE,       /* policies changed: every connection reloads */
	RESULT_INVALIDATE_CERT,  /* attachments of certificate id changed */
	RESULT_INVALIDATE_THING  /* thing `topic` changed (groups, attributes...) */
};

struct result {
	struct qnode node;
	enum result_kind kind;
	char *client_id;                 /* owned; NULL: every subscriber */
	uint64_t conn_serial;            /* 0: any connection of client_id */
	char *topic;                     /* owned */
	void *payload;                   /* owned */
	size_t len;
	char id[PKI_CERT_ID_LEN + 1];    /* KICK_CERT, KICK_CA */
	int64_t t_start_ms;              /* request arrival, for latency logs */
};
void result_free(struct result *r);

/* A mutex-protected FIFO. */
struct queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct qnode *head, *tail;       /* struct job or struct result */
	size_t count, max;
	int closed;
};

struct work {
	struct plugin *pl;               /* borrowed */
	int for_hooks;                   /* the pool of requests that call a hook */
	struct queue jobs;
	pthread_t *threads;
	size_t nthreads, started;
};

/* Starts n workers, each opening its own core with pl->conf. A request to
 * provision with a template that has a pre-provisioning hook, taken by a
 * worker of pl->work, is handed to pl->hook_work (when that pool has
 * threads), so hooks that hang hold up only hooked requests, never the
 * rest of the fleet. */
iotp_rc work_start(struct work *w, struct plugin *pl, size_t n, size_t queue_max,
                   struct iotp_err *err);
/* Queues a job (ownership passes on success). IOTP_ERR_THROTTLED when the
 * queue is full: the caller still owns j. */
iotp_rc work_submit(struct work *w, struct job *j);
/* Stops and joins the workers; pending jobs are dropped. */
void work_stop(struct work *w);

/* Results (from workers and the feed thread) to the broker thread. */
void results_push(struct plugin *pl, struct result *r);

/* ------------------------------------------------------------------ */
/* Change feed (feed.c)                                                */

struct feed {
	struct plugin *pl;               /* borrowed */
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;
	int64_t last_id;
	int interval_ms;
};
iotp_rc feed_start(struct feed *f, struct plugin *pl, struct iotp_err *err);
void feed_stop(struct feed *f);

/* ------------------------------------------------------------------ */
/* The plugin                                                          */

struct plugin {
	void *pid;                       /* mosquitto_plugin_id_t */
	pthread_t broker_thread;
	struct iotp_conf conf;
	char conf_path[CONF_STR_MAX];
	char capath[CONF_STR_MAX];       /* "" when the plugin keeps none */
	char store_url[CONF_STR_MAX * 2];
	struct iotp_core core;           /* the broker thread's */
	struct conn_map conns;
	uint64_t policy_gen;             /* bumped by RESULT_INVALIDATE */
	uint64_t next_serial;
	struct work work;
	struct work hook_work;           /* provision requests that call a hook */
	struct feed feed;
	struct queue results;
	int feed_interval_ms;
	size_t nworkers;
	size_t nhook_workers;            /* 0: hooked requests on the workers */
	size_t queue_max;
	size_t hook_queue_max;
	const struct prov_hook *hook;    /* pre-provisioning hook caller, or NULL */
	struct prov_hook hook_storage;
	struct webhook *webhook;         /* src/net: signs and sends hook calls */
};

/* auth.c: MOSQ_EVT_BASIC_AUTH. Returns a mosquitto error code. */
int auth_basic(struct plugin *pl, struct mosquitto *client);
/* auth.c: (re)loads the policies and thing variables of c. */
iotp_rc auth_load_policies(struct plugin *pl, struct conn *c, struct iotp_err *err);

/* acl.c: MOSQ_EVT_ACL_CHECK. */
int acl_check(struct plugin *pl, struct mosquitto *client, int access, const char *topic,
              int retain);
/* acl.c: one decision through the connection's cache. */
enum policy_decision acl_decide(struct plugin *pl, struct conn *c, enum policy_action action,
                                const char *resource_part);

/* fleet.c: MOSQ_EVT_MESSAGE; returns a mosquitto error code. */
int fleet_on_message(struct plugin *pl, struct mosquitto *client, const char *topic,
                     const void *payload, uint32_t len);
/* fleet.c: runs a JOB_FLEET on a worker with its core; returns the reply. */
struct result *fleet_run(struct plugin *pl, struct iotp_core *core, struct job *j);
/* fleet.c: 1 when j is a provision request whose template has a
 * pre-provisioning hook (a template that cannot be read: 0, fleet_run
 * then says why). */
int fleet_calls_hook(struct iotp_core *core, const struct job *j);
/* fleet.c: the rejected reply to j for rc and msg. */
struct result *fleet_refusal(const struct job *j, iotp_rc rc, const char *msg);

/* plugin.c: queues an audit event about a refused or notable connection. */
void plugin_audit(struct plugin *pl, const char *action, const char *cert_id,
                  const char *client_id, const char *reason);

#endif
