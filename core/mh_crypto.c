/*
 * Cryptography for the hub: AES-256-GCM sealing, SHA-256, tokens, Argon2id
 * password hashes and the master key.  OpenSSL's EVP interface and libargon2;
 * no global state, so every function may run on any thread.
 */
#include "config.h"

#include "mh_crypto.h"
#include "mh_log.h"
#include "mh_util.h"

#include <argon2.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define MH_SEAL_VERSION 0x01
#define MH_NONCE_LEN 12
#define MH_TAG_LEN 16
/* EVP_*Update take an int length: feed large buffers in pieces of this size. */
#define MH_EVP_CHUNK ((size_t)1 << 30)

/* Argon2 parameters accepted from MAILHUB_ARGON2 and from stored PHC strings
 * (a stored string with m=100 GiB would otherwise make verify allocate it). */
#define MH_ARGON2_MAX_T 64u
#define MH_ARGON2_MAX_M_KIB (4u * 1024u * 1024u) /* 4 GiB */
#define MH_ARGON2_MAX_P 64u
#define MH_ARGON2_SALT_LEN 16
#define MH_ARGON2_HASH_LEN 32

void mh_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

/* ------------------------------------------------------------ sealing */

int mh_seal(const unsigned char key[MH_KEY_LEN], const void *aad, size_t aad_len, const void *pt, size_t len,
            unsigned char *out, size_t *out_len)
{
    if (key == NULL || out == NULL || (pt == NULL && len > 0) || (aad == NULL && aad_len > 0))
        return -1;
    if (aad_len > INT_MAX || len > SIZE_MAX - MH_SEAL_OVERHEAD)
        return -1;

    unsigned char *nonce = out + 1;
    unsigned char *ct = out + 1 + MH_NONCE_LEN;
    const unsigned char *in = pt;
    size_t done_len = 0;
    int rc = -1, n = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return -1;

    out[0] = MH_SEAL_VERSION;
    if (mh_random(nonce, MH_NONCE_LEN) != 0)
        goto done;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, MH_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
        goto done;
    if (aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
        goto done;
    while (done_len < len) {
        size_t chunk = len - done_len < MH_EVP_CHUNK ? len - done_len : MH_EVP_CHUNK;
        if (EVP_EncryptUpdate(ctx, ct + done_len, &n, in + done_len, (int)chunk) != 1 || (size_t)n != chunk)
            goto done;
        done_len += chunk;
    }
    if (EVP_EncryptFinal_ex(ctx, ct + len, &n) != 1 || n != 0)
        goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, MH_TAG_LEN, ct + len) != 1)
        goto done;
    if (out_len != NULL)
        *out_len = len + MH_SEAL_OVERHEAD;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    if (rc != 0)
        mh_wipe(out, len + MH_SEAL_OVERHEAD);
    return rc;
}

int mh_unseal(const unsigned char key[MH_KEY_LEN], const void *aad, size_t aad_len, const void *sealed,
              size_t sealed_len, unsigned char *out, size_t *out_len)
{
    const unsigned char *s = sealed;
    if (key == NULL || s == NULL || sealed_len < MH_SEAL_OVERHEAD || (aad == NULL && aad_len > 0))
        return -1;
    if (s[0] != MH_SEAL_VERSION || aad_len > INT_MAX)
        return -1;
    size_t len = sealed_len - MH_SEAL_OVERHEAD;
    if (out == NULL && len > 0)
        return -1;

    const unsigned char *nonce = s + 1;
    const unsigned char *ct = s + 1 + MH_NONCE_LEN;
    unsigned char tag[MH_TAG_LEN];
    unsigned char last[16];
    size_t done_len = 0;
    int rc = -1, n = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return -1;

    memcpy(tag, ct + len, MH_TAG_LEN);
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, MH_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
        goto done;
    if (aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
        goto done;
    while (done_len < len) {
        size_t chunk = len - done_len < MH_EVP_CHUNK ? len - done_len : MH_EVP_CHUNK;
        if (EVP_DecryptUpdate(ctx, out + done_len, &n, ct + done_len, (int)chunk) != 1 || (size_t)n != chunk)
            goto done;
        done_len += chunk;
    }
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, MH_TAG_LEN, tag) != 1)
        goto done;
    /* GCM writes nothing here; the buffer only keeps a misbehaving
     * implementation from writing past out. */
    if (EVP_DecryptFinal_ex(ctx, last, &n) != 1 || n != 0)
        goto done;
    if (out_len != NULL)
        *out_len = len;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    if (rc != 0 && len > 0)
        mh_wipe(out, len); /* never leave unauthenticated plaintext behind */
    return rc;
}

/* ------------------------------------------------------------ digests, hex, tokens */

void mh_sha256(const void *buf, size_t len, unsigned char out[32])
{
    static const unsigned char empty = 0;
    if (EVP_Digest(buf != NULL ? buf : &empty, buf != NULL ? len : 0, out, NULL, EVP_sha256(), NULL) != 1) {
        /* only possible when libcrypto is broken; a wrong hash would be silent corruption */
        fputs("mailhub: SHA-256 failed (libcrypto)\n", stderr);
        abort();
    }
}

void mh_hmac_sha256(const unsigned char *key, size_t key_len, const void *msg, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    if (HMAC(EVP_sha256(), key, (int)key_len, msg, len, out, &n) == NULL || n != 32) {
        fputs("mailhub: HMAC-SHA-256 failed (libcrypto)\n", stderr);
        abort();
    }
}

int mh_ct_equal(const void *a, const void *b, size_t len) { return CRYPTO_memcmp(a, b, len) == 0; }

void mh_hex(const unsigned char *bin, size_t len, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        hex[2 * i] = digits[bin[i] >> 4];
        hex[2 * i + 1] = digits[bin[i] & 0x0f];
    }
    hex[2 * len] = '\0';
}

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding; out holds 4 * ceil(len / 3) + 1 bytes. */
static void b64url_encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
}

int mh_token_new(char *tok)
{
    unsigned char raw[32];
    if (tok == NULL)
        return -1;
    if (mh_random(raw, sizeof raw) != 0) {
        tok[0] = '\0';
        return -1;
    }
    memcpy(tok, "mh_", 3);
    b64url_encode(raw, sizeof raw, tok + 3); /* 43 characters + NUL */
    mh_wipe(raw, sizeof raw);
    return 0;
}

/* ------------------------------------------------------------ passwords */

/* Parse an unsigned decimal of at most 10 digits at *p; advances *p. */
static int parse_u32(const char **p, uint32_t *v)
{
    const char *s = *p;
    uint64_t x = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9') {
        if (++digits > 10)
            return -1;
        x = x * 10 + (uint64_t)(*s - '0');
        s++;
    }
    if (digits == 0 || x > UINT32_MAX)
        return -1;
    *v = (uint32_t)x;
    *p = s;
    return 0;
}

static int argon2_params_ok(uint32_t t, uint32_t m, uint32_t p)
{
    return t >= 1 && t <= MH_ARGON2_MAX_T && p >= 1 && p <= MH_ARGON2_MAX_P && m >= 8 * p &&
           m <= MH_ARGON2_MAX_M_KIB;
}

/* "t=3,m=65536,p=1" (any order, any subset); 0 or -1.  Changes t, m and p only on success. */
static int parse_argon2_env(const char *s, uint32_t *t, uint32_t *m, uint32_t *p)
{
    uint32_t vt = *t, vm = *m, vp = *p;
    while (*s != '\0') {
        char k = *s;
        uint32_t *dst = k == 't' ? &vt : k == 'm' ? &vm : k == 'p' ? &vp : NULL;
        if (dst == NULL || s[1] != '=')
            return -1;
        s += 2;
        if (parse_u32(&s, dst) != 0)
            return -1;
        if (*s == ',')
            s++;
        else if (*s != '\0')
            return -1;
    }
    if (!argon2_params_ok(vt, vm, vp))
        return -1;
    *t = vt;
    *m = vm;
    *p = vp;
    return 0;
}

char *mh_password_hash(const char *password)
{
    uint32_t t = MH_ARGON2_T, m = MH_ARGON2_M_KIB, p = MH_ARGON2_P;
    const char *env = getenv("MAILHUB_ARGON2");
    if (env != NULL && *env != '\0' && parse_argon2_env(env, &t, &m, &p) != 0)
        mh_core_warn("MAILHUB_ARGON2 must look like \"t=3,m=65536,p=1\" (t 1..%u, m 8*p..%u KiB, p 1..%u); "
                     "using the defaults",
                     MH_ARGON2_MAX_T, MH_ARGON2_MAX_M_KIB, MH_ARGON2_MAX_P);
    if (password == NULL)
        password = "";

    unsigned char salt[MH_ARGON2_SALT_LEN];
    if (mh_random(salt, sizeof salt) != 0)
        return NULL;
    size_t enc_len = argon2_encodedlen(t, m, p, MH_ARGON2_SALT_LEN, MH_ARGON2_HASH_LEN, Argon2_id);
    char *enc = calloc(1, enc_len);
    if (enc == NULL)
        return NULL;
    int rc = argon2id_hash_encoded(t, m, p, password, strlen(password), salt, sizeof salt, MH_ARGON2_HASH_LEN,
                                   enc, enc_len);
    mh_wipe(salt, sizeof salt);
    if (rc != ARGON2_OK) {
        mh_core_error("password hashing failed: %s", argon2_error_message(rc));
        free(enc);
        return NULL;
    }
    return enc;
}

/* Check "$argon2id$v=19$m=M,t=T,p=P$" before handing the string to libargon2,
 * so that a damaged or hostile record cannot ask for unbounded memory or time. */
static int phc_params_ok(const char *phc)
{
    static const char prefix[] = "$argon2id$v=19$m=";
    uint32_t t, m, p;
    const char *s = phc;
    if (strncmp(s, prefix, sizeof prefix - 1) != 0)
        return 0;
    s += sizeof prefix - 1;
    if (parse_u32(&s, &m) != 0 || strncmp(s, ",t=", 3) != 0)
        return 0;
    s += 3;
    if (parse_u32(&s, &t) != 0 || strncmp(s, ",p=", 3) != 0)
        return 0;
    s += 3;
    if (parse_u32(&s, &p) != 0 || *s != '$')
        return 0;
    return argon2_params_ok(t, m, p);
}

int mh_password_verify(const char *phc, const char *password)
{
    if (phc == NULL || password == NULL || !phc_params_ok(phc))
        return 0;
    return argon2id_verify(phc, password, strlen(password)) == ARGON2_OK ? 1 : 0;
}

/* ------------------------------------------------------------ master key */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Exactly 32 bytes from 64 hex digits or from base64 (standard or URL alphabet, padding optional). */
static int decode_key(const char *s, size_t len, unsigned char key[MH_KEY_LEN])
{
    if (len == 2 * MH_KEY_LEN) {
        int ok = 1;
        for (size_t i = 0; i < MH_KEY_LEN; i++) {
            int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                ok = 0;
                break;
            }
            key[i] = (unsigned char)(hi << 4 | lo);
        }
        if (ok)
            return 0;
    }
    /* 32 bytes are 43 base64 characters, plus one '=' when padded */
    if (len == 44 && s[43] == '=')
        len = 43;
    if (len != 43)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            key[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* the 2 bits left over must be zero, or the encoding was not of 32 bytes */
    if (o != MH_KEY_LEN || acc != 0)
        return -1;
    return 0;
}

static int key_from_env(const char *val, unsigned char key[MH_KEY_LEN], char **err)
{
    size_t b = 0, e = strlen(val);
    while (b < e && (val[b] == ' ' || val[b] == '\t' || val[b] == '\n' || val[b] == '\r'))
        b++;
    while (e > b && (val[e - 1] == ' ' || val[e - 1] == '\t' || val[e - 1] == '\n' || val[e - 1] == '\r'))
        e--;
    if (decode_key(val + b, e - b, key) == 0)
        return 0;
    mh_wipe(key, MH_KEY_LEN);
    *err = mh_asprintf("MAILHUB_MASTER_KEY must be 64 hex digits or the base64 of 32 bytes "
                       "(the value set has %zu characters)",
                       e - b);
    return -1;
}

static char *errno_msg(const char *what, const char *path, int e)
{
    return mh_asprintf("%s %s: %s", what, path, strerror(e));
}

/* Create path with 32 random bytes.  0; 1 if it exists already; -1 with *err. */
static int key_file_create(const char *path, unsigned char key[MH_KEY_LEN], char **err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return 1;
        *err = errno_msg("cannot create the master key file", path, errno);
        return -1;
    }
    if (mh_random(key, MH_KEY_LEN) != 0) {
        *err = mh_asprintf("cannot create the master key file %s: no random bytes", path);
        goto fail;
    }
    size_t off = 0;
    while (off < MH_KEY_LEN) {
        ssize_t n = write(fd, key + off, MH_KEY_LEN - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *err = errno_msg("cannot write the master key file", path, n < 0 ? errno : EIO);
            goto fail;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        *err = errno_msg("cannot write the master key file", path, errno);
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        *err = errno_msg("cannot write the master key file", path, errno);
        goto fail;
    }
    /* make the new directory entry durable too (best effort) */
    char *dir = mh_dirname(path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(path);
    mh_wipe(key, MH_KEY_LEN);
    return -1;
}

static int key_file_read(const char *path, unsigned char key[MH_KEY_LEN], char **err)
{
    /* a symbolic link is followed: the mode checked is the target's */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return 1;
        *err = errno_msg("cannot open the master key file", path, e);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *err = errno_msg("cannot stat the master key file", path, errno);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        *err = mh_asprintf("master key file %s is not a regular file", path);
        close(fd);
        return -1;
    }
    if ((st.st_mode & 077) != 0) {
        *err = mh_asprintf("master key file %s has mode %04o: it must not be accessible to group or others "
                           "(chmod 600 %s)",
                           path, (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return -1;
    }
    if (st.st_size != MH_KEY_LEN) {
        *err = mh_asprintf("master key file %s has %lld bytes; a master key file holds exactly %d bytes",
                           path, (long long)st.st_size, MH_KEY_LEN);
        close(fd);
        return -1;
    }
    size_t off = 0;
    while (off < MH_KEY_LEN) {
        ssize_t n = read(fd, key + off, MH_KEY_LEN - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *err = n < 0 ? errno_msg("cannot read the master key file", path, errno)
                         : mh_asprintf("master key file %s is shorter than %d bytes", path, MH_KEY_LEN);
            close(fd);
            mh_wipe(key, MH_KEY_LEN);
            return -1;
        }
        off += (size_t)n;
    }
    close(fd);
    return 0;
}

static int master_key_load(const char *path, unsigned char key[MH_KEY_LEN], char **err)
{
    const char *env = getenv("MAILHUB_MASTER_KEY");
    if (env != NULL)
        return key_from_env(env, key, err);
    if (path == NULL || *path == '\0') {
        *err = mh_xstrdup("no master key: MAILHUB_MASTER_KEY is not set and no key file path was given");
        return -1;
    }

    /* Two tries: a missing file is created; if someone else creates it
     * between our open and create, read theirs. */
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = key_file_read(path, key, err);
        if (rc <= 0)
            return rc;
        rc = key_file_create(path, key, err);
        if (rc == 0) {
            mh_core_info(
                "created a new master key in %s; back it up: without it the stored mail cannot be read",
                path);
            return 0;
        }
        if (rc < 0)
            return -1;
    }
    *err = mh_asprintf("master key file %s is missing and cannot be created (a dangling symbolic link?)", path);
    return -1;
}

int mh_master_key_load(const char *path, unsigned char key[MH_KEY_LEN], char **err)
{
    char *msg = NULL;
    int rc = master_key_load(path, key, &msg);
    if (rc != 0) {
        mh_wipe(key, MH_KEY_LEN);
        if (msg == NULL)
            msg = mh_xstrdup("cannot load the master key");
    }
    if (err != NULL)
        *err = msg;
    else
        free(msg);
    return rc == 0 ? 0 : -1;
}
