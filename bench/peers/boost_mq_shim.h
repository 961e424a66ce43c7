/* boost_mq_shim.h - C interface to boost::interprocess::message_queue (boost_mq_shim.cpp). */
#ifndef BOOST_MQ_SHIM_H
#define BOOST_MQ_SHIM_H

#include <stddef.h>

struct bmq;

/* A new queue of depth messages of at most size bytes (fails if the name exists), mode 0600. */
struct bmq *bmq_create(const char *name, size_t depth, size_t size, char *err, size_t errlen);
struct bmq *bmq_open(const char *name, char *err, size_t errlen);
/* Blocks while the queue is full. */
int bmq_send(struct bmq *m, const void *buf, size_t n, char *err, size_t errlen);
/* Blocks while the queue is empty; *got is the message's length. */
int bmq_receive(struct bmq *m, void *buf, size_t n, size_t *got, char *err, size_t errlen);
void bmq_close(struct bmq *m);
/* Removes the name (shm_unlink); the queue lives on while it is open. */
int bmq_remove(const char *name);
const char *bmq_version(void);

#endif
