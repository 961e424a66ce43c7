/* hmsg.h - the message format of the hardening tests, the C twin of tests/hmsg/hmsg.go (which
 * specifies it) and tests/python_hmsg.py:
 *
 *   offset 0  u64 seq     0, 1, 2, ... per sender (native byte order, like every field)
 *          8  u32 sender  the sender's id
 *         12  u32 len     the whole message's length (HMSG_HEADER or more)
 *         16  u32 flags   0 data; HMSG_END: the sender's last message, seq = data messages sent
 *         20  u32 crc     CRC-32 (IEEE, zlib's) of bytes [0, 20) followed by [24, len)
 *         24  payload     byte i = pattern[(seq*7 + sender*13) % 256 + i],
 *                         pattern[k] = (uint8_t)(((uint32_t)k * 2654435761u) >> 13)
 */
#ifndef MMIPC_TEST_HMSG_H
#define MMIPC_TEST_HMSG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define HMSG_HEADER 24
#define HMSG_MAX (64 * 1024)
#define HMSG_END 1u

__attribute__((unused)) static uint32_t hmsg_crc_table[256];
__attribute__((unused)) static unsigned char hmsg_pattern[256 + HMSG_MAX];

/* Fills the tables; call once before anything else. */
static inline void hmsg_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		hmsg_crc_table[i] = c;
	}
	for (uint32_t k = 0; k < sizeof hmsg_pattern; k++)
		hmsg_pattern[k] = (unsigned char)((k * 2654435761u) >> 13);
}

static inline uint32_t hmsg_crc_update(uint32_t crc, const unsigned char *p, size_t n)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++)
		crc = hmsg_crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static inline uint32_t hmsg_checksum(const unsigned char *msg, size_t len)
{
	return hmsg_crc_update(hmsg_crc_update(0, msg, 20), msg + HMSG_HEADER, len - HMSG_HEADER);
}

static inline size_t hmsg_payload_start(uint64_t seq, uint32_t sender)
{
	return (size_t)((seq * 7 + (uint64_t)sender * 13) & 255);
}

/* Writes message seq of sender, len bytes (HMSG_HEADER..HMSG_MAX), into msg; the crc last. */
static inline void hmsg_fill(unsigned char *msg, size_t len, uint64_t seq, uint32_t sender, uint32_t flags)
{
	uint32_t l = (uint32_t)len;
	memcpy(msg, &seq, 8);
	memcpy(msg + 8, &sender, 4);
	memcpy(msg + 12, &l, 4);
	memcpy(msg + 16, &flags, 4);
	memcpy(msg + HMSG_HEADER, hmsg_pattern + hmsg_payload_start(seq, sender), len - HMSG_HEADER);
	uint32_t crc = hmsg_checksum(msg, len);
	memcpy(msg + 20, &crc, 4);
}

/* Checks a received message of len bytes completely. Returns 0 with the header fields set, or -1
 * with the reason in why. */
static inline int hmsg_verify(const unsigned char *msg, size_t len, uint64_t *seq, uint32_t *sender,
			      uint32_t *flags, char *why, size_t whylen)
{
	if (len < HMSG_HEADER || len > HMSG_MAX) {
		snprintf(why, whylen, "a message of %zu bytes (want %d to %d)", len, HMSG_HEADER, HMSG_MAX);
		return -1;
	}
	uint32_t l, crc;
	memcpy(seq, msg, 8);
	memcpy(sender, msg + 8, 4);
	memcpy(&l, msg + 12, 4);
	memcpy(flags, msg + 16, 4);
	memcpy(&crc, msg + 20, 4);
	if (l != len) {
		snprintf(why, whylen, "seq %llu from %u: len field %u, received %zu bytes (torn or truncated)",
			 (unsigned long long)*seq, *sender, l, len);
		return -1;
	}
	uint32_t want = hmsg_checksum(msg, len);
	if (crc != want) {
		snprintf(why, whylen, "seq %llu from %u (%zu bytes): crc %#x, computed %#x (torn)",
			 (unsigned long long)*seq, *sender, len, crc, want);
		return -1;
	}
	if ((*flags & ~HMSG_END) != 0 || (*flags == HMSG_END && len != HMSG_HEADER)) {
		snprintf(why, whylen, "seq %llu from %u: flags %#x with %zu bytes", (unsigned long long)*seq,
			 *sender, *flags, len);
		return -1;
	}
	const unsigned char *p = hmsg_pattern + hmsg_payload_start(*seq, *sender);
	if (memcmp(msg + HMSG_HEADER, p, len - HMSG_HEADER) != 0) {
		size_t i = 0;
		while (msg[HMSG_HEADER + i] == p[i])
			i++;
		snprintf(why, whylen, "seq %llu from %u: payload byte %zu is %#x, want %#x",
			 (unsigned long long)*seq, *sender, i, msg[HMSG_HEADER + i], p[i]);
		return -1;
	}
	return 0;
}

#endif
