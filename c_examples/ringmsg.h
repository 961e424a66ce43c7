/* ringmsg.h - the message format ring_sender.c and ring_receiver.c (and their Go and Python twins
 * in go_examples/ringmsg and python_examples/ringmsg.py) agree on.
 *
 * A ring carries whole messages of any length, so no framing is needed; each message says who sent
 * it and its place in that sender's sequence, and carries a checksum of its payload, so that the
 * receiver can prove nothing was lost, repeated, reordered or torn:
 *
 *   offset 0   u64 seq       0, 1, 2, ... per sender
 *          8   u32 sender    the sender's id
 *         12   u32 checksum  FNV-1a (32-bit) of the payload
 *         16   payload       seq % 97 bytes, byte i = (seq + 31 * i + sender) & 0xff
 */
#ifndef RINGMSG_H
#define RINGMSG_H

#include <stdint.h>
#include <string.h>

#define RINGMSG_DEFAULT_NAME "mmipc-ring-example"
#define RINGMSG_HEADER 16
#define RINGMSG_MAX (RINGMSG_HEADER + 96)
#define RINGMSG_CAPACITY (64 * 1024)
#define RINGMSG_TIMEOUT_NS ((int64_t)10 * 1000 * 1000 * 1000)

static inline uint32_t ringmsg_fnv1a(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* Builds message seq of sender into buf (RINGMSG_MAX bytes); returns its length. */
static inline size_t ringmsg_build(unsigned char *buf, uint64_t seq, uint32_t sender)
{
	size_t n = (size_t)(seq % 97);
	for (size_t i = 0; i < n; i++)
		buf[RINGMSG_HEADER + i] = (unsigned char)(seq + 31 * i + sender);
	uint32_t sum = ringmsg_fnv1a(buf + RINGMSG_HEADER, n);
	memcpy(buf, &seq, 8);
	memcpy(buf + 8, &sender, 4);
	memcpy(buf + 12, &sum, 4);
	return RINGMSG_HEADER + n;
}

#endif
