/*
 * Bulk registration in iotprovd: the route table of the thing registration
 * task operations (and the iotprov upload of input files), and the task
 * runner, a background thread with its own core (its own store
 * connection) that applies InProgress tasks batch by batch (core/bulk.h).
 * The runner picks up unfinished tasks when it starts, so tasks survive a
 * restart of the daemon, and polls for new ones a few times a second.
 */
#ifndef IOTP_API_TASKS_H
#define IOTP_API_TASKS_H

#include "common/conf.h"
#include "common/err.h"
#include "server/router.h"

/* StartThingRegistrationTask, DescribeThingRegistrationTask,
 * ListThingRegistrationTaskReports, StopThingRegistrationTask,
 * ListThingRegistrationTasks, GetThingRegistrationTaskReport and
 * PutImportFile (iotprov extensions, docs/bulk.md). */
extern const struct route_table api_task_routes;

struct tasks_runner;

/* Starts the runner thread. conf is copied (a later reload does not reach
 * the runner). The thread opens its own core with the copy; when that
 * fails it logs why and ends, and tasks wait for the next start. Free with
 * tasks_runner_stop(). */
iotp_rc tasks_runner_start(const struct iotp_conf *conf, struct tasks_runner **out,
                           struct iotp_err *err);
/* Asks the runner to stop after its current batch (committed or rolled
 * back as a whole) and joins it. NULL is a no-op. */
void tasks_runner_stop(struct tasks_runner *r);

#endif
