#ifndef HALYARD_CCRC32C_H
#define HALYARD_CCRC32C_H
#include <stddef.h>
#include <stdint.h>

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) as NVMe/TCP HDGST/DDGST use it
/// (NVMe/TCP transport spec §3.6.2.6). `crc` is the running value: start with 0; the pre- and
/// post-inversion are applied inside, so calls chain: f(f(0, a), b) == f(0, a ‖ b).
uint32_t halyard_crc32c(uint32_t crc, const void *data, size_t length);
/// The portable table-driven implementation (always available).
uint32_t halyard_crc32c_portable(uint32_t crc, const void *data, size_t length);
/// The SSE4.2 implementation; only call when halyard_crc32c_has_hardware() is non-zero.
uint32_t halyard_crc32c_hardware(uint32_t crc, const void *data, size_t length);
/// Non-zero when the CPU has the SSE4.2 crc32 instruction.
int halyard_crc32c_has_hardware(void);
#endif
