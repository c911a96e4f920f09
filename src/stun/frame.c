/* stun/frame.c: ChannelData messages (RFC 8656 §12.4) and the TCP/TLS stream framer that
 * separates STUN messages from ChannelData (§12.5). */
#include "turnkey/stun.h"

#include <string.h>

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static size_t pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

bool stun_channel_valid(uint16_t channel)
{
    return channel >= 0x4000 && channel <= 0x7FFF;
}

bool stun_is_channeldata(const uint8_t *buf, size_t len)
{
    return buf && len >= 1 && buf[0] >= 0x40 && buf[0] <= 0x7F;
}

int stun_channeldata_parse(const uint8_t *buf, size_t len, uint16_t *channel, const uint8_t **data,
                           size_t *data_len)
{
    if (!buf || !channel || !data || !data_len)
        return STUN_ERR_INVALID;
    if (len < STUN_CHANNELDATA_HEADER_SIZE)
        return STUN_ERR_TRUNCATED;
    uint16_t ch = rd16(buf);
    if (!stun_channel_valid(ch))
        return STUN_ERR_BAD_CHANNEL;
    size_t dlen = rd16(buf + 2);
    if (len - STUN_CHANNELDATA_HEADER_SIZE < dlen)
        return STUN_ERR_TRUNCATED;
    if (len > pad4(STUN_CHANNELDATA_HEADER_SIZE + dlen))
        return STUN_ERR_BAD_LENGTH;
    *channel = ch;
    *data = buf + STUN_CHANNELDATA_HEADER_SIZE;
    *data_len = dlen;
    return STUN_OK;
}

int stun_channeldata_header(uint8_t *buf, size_t cap, uint16_t channel, size_t data_len)
{
    if (!buf)
        return STUN_ERR_INVALID;
    if (!stun_channel_valid(channel))
        return STUN_ERR_BAD_CHANNEL;
    if (data_len > 0xFFFF || cap < STUN_CHANNELDATA_HEADER_SIZE)
        return STUN_ERR_NO_SPACE;
    buf[0] = (uint8_t)(channel >> 8);
    buf[1] = (uint8_t)channel;
    buf[2] = (uint8_t)(data_len >> 8);
    buf[3] = (uint8_t)data_len;
    return STUN_CHANNELDATA_HEADER_SIZE;
}

int stun_channeldata_build(uint8_t *buf, size_t cap, uint16_t channel, const uint8_t *data,
                           size_t data_len, bool pad)
{
    if (!buf || (!data && data_len))
        return STUN_ERR_INVALID;
    if (!stun_channel_valid(channel))
        return STUN_ERR_BAD_CHANNEL;
    if (data_len > 0xFFFF)
        return STUN_ERR_NO_SPACE;
    size_t total = STUN_CHANNELDATA_HEADER_SIZE + data_len;
    size_t padded = pad ? pad4(total) : total;
    if (cap < padded)
        return STUN_ERR_NO_SPACE;
    if (data_len && data != buf + STUN_CHANNELDATA_HEADER_SIZE)
        memmove(buf + STUN_CHANNELDATA_HEADER_SIZE, data, data_len);
    stun_channeldata_header(buf, cap, channel, data_len);
    memset(buf + total, 0, padded - total);
    return (int)padded;
}

/* Checks the STUN header bytes available so far; only a complete, inconsistent field is an
 * error, so every prefix of a valid message passes. */
static int stun_prefix(const uint8_t *buf, size_t len, size_t *frame_len, size_t *consumed)
{
    static const uint8_t cookie[4] = {0x21, 0x12, 0xA4, 0x42};
    /* Fields are checked in byte order, so the verdict does not depend on how the stream
     * was split: length (bytes 2-3), then the cookie (4-7) as far as it has arrived. */
    if (len < 4) {
        *consumed = STUN_HEADER_SIZE;
        return STUN_ERR_NEED_MORE;
    }
    size_t body = rd16(buf + 2);
    if (body % 4 != 0)
        return STUN_ERR_BAD_LENGTH;
    for (size_t i = 4; i < 8 && i < len; i++)
        if (buf[i] != cookie[i - 4])
            return STUN_ERR_NOT_STUN;
    size_t total = STUN_HEADER_SIZE + body;
    *consumed = total;
    if (len < total)
        return STUN_ERR_NEED_MORE;
    *frame_len = total;
    return STUN_FRAME_STUN;
}

static int channel_prefix(const uint8_t *buf, size_t len, size_t *frame_len, size_t *consumed)
{
    if (len < STUN_CHANNELDATA_HEADER_SIZE) {
        *consumed = STUN_CHANNELDATA_HEADER_SIZE;
        return STUN_ERR_NEED_MORE;
    }
    size_t total = STUN_CHANNELDATA_HEADER_SIZE + rd16(buf + 2);
    *consumed = pad4(total); /* streams carry ChannelData padded to 4 bytes */
    if (len < *consumed)
        return STUN_ERR_NEED_MORE;
    *frame_len = total;
    return STUN_FRAME_CHANNELDATA;
}

int stun_frame_next(const uint8_t *buf, size_t len, size_t *frame_len, size_t *consumed)
{
    if (!frame_len || !consumed || (!buf && len))
        return STUN_ERR_INVALID;
    *frame_len = 0;
    *consumed = STUN_CHANNELDATA_HEADER_SIZE;
    if (len == 0)
        return STUN_ERR_NEED_MORE;
    int rc;
    switch (buf[0] & 0xC0) {
    case 0x00: rc = stun_prefix(buf, len, frame_len, consumed); break;
    case 0x40: rc = channel_prefix(buf, len, frame_len, consumed); break;
    default: rc = STUN_ERR_NOT_STUN; break;
    }
    if (rc < 0 && rc != STUN_ERR_NEED_MORE)
        *consumed = 0;
    if (rc < 0)
        *frame_len = 0;
    return rc;
}
