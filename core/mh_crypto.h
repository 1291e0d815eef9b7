/*
 * Cryptography for the hub, all through OpenSSL's libcrypto and libargon2:
 * AES-256-GCM sealing (message bodies, credentials, wrapped data keys),
 * SHA-256, random tokens and memory-hard password hashing (Argon2id).
 * Every function is thread-safe and never logs key material.
 */
#ifndef MH_CRYPTO_H
#define MH_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define MH_KEY_LEN 32    /* AES-256 */
#define MH_SEAL_OVERHEAD (1 + 12 + 16) /* version byte, nonce, tag */

/**
 * Seal `pt` with AES-256-GCM under `key` (32 bytes), binding `aad` (may be
 * NULL/0; e.g. "msg:<user_id>:<account_id>" so a blob cannot be moved to
 * another user's row).  Output layout: 0x01 || 12-byte random nonce ||
 * ciphertext || 16-byte tag; `out` must hold len + MH_SEAL_OVERHEAD bytes
 * and must not overlap pt.  Returns 0, or -1 (OpenSSL failure, or NULL
 * arguments).
 */
int mh_seal(const unsigned char key[MH_KEY_LEN], const void *aad, size_t aad_len, const void *pt, size_t len,
            unsigned char *out, size_t *out_len);
/**
 * Open what mh_seal() made.  `out` must hold sealed_len - MH_SEAL_OVERHEAD
 * bytes.  Returns 0, or -1 when the key is wrong, the aad differs, the data
 * was tampered with, or the format is unknown (out is then zeroed, so no
 * unauthenticated plaintext is left in it, and *out_len is not set).
 */
int mh_unseal(const unsigned char key[MH_KEY_LEN], const void *aad, size_t aad_len, const void *sealed,
              size_t sealed_len, unsigned char *out, size_t *out_len);

/** SHA-256 of buf. */
void mh_sha256(const void *buf, size_t len, unsigned char out[32]);
/** HMAC-SHA-256 of msg under key. */
void mh_hmac_sha256(const unsigned char *key, size_t key_len, const void *msg, size_t len, unsigned char out[32]);
/** 1 if a and b (len bytes each) are equal, compared in constant time (for MACs and tokens). */
int mh_ct_equal(const void *a, const void *b, size_t len);
/** Lower-case hex of bin into hex (2*len+1 bytes). */
void mh_hex(const unsigned char *bin, size_t len, char *hex);
/* Random bytes: mh_random() in mh_util.h (RAND_bytes). */

/**
 * A new API token: "mh_" followed by 43 base64url characters (32 random
 * bytes), written to tok (at least MH_TOKEN_LEN + 1 bytes).  Returns 0/-1.
 */
#define MH_TOKEN_LEN 46
int mh_token_new(char *tok);

/**
 * Argon2id password hashing (16-byte random salt, 32-byte hash).  The
 * parameters are the defaults below unless overridden by the environment
 * variable MAILHUB_ARGON2 ("t=3,m=65536,p=1", any order or subset, memory
 * in KiB; tests use it to go faster); a malformed value is logged and the
 * defaults are used.  Returns a malloc'ed PHC string
 * "$argon2id$v=19$m=...,t=...,p=...$salt$hash", or NULL.
 */
#define MH_ARGON2_T 3
#define MH_ARGON2_M_KIB 65536
#define MH_ARGON2_P 1
char *mh_password_hash(const char *password);
/**
 * 1 if password matches the PHC string, 0 if not (or the string is
 * malformed, not argon2id v19, or asks for more than 4 GiB, 64 passes or 64
 * lanes).  Constant time in the password.
 */
int mh_password_verify(const char *phc, const char *password);

/**
 * The master key: from the environment variable MAILHUB_MASTER_KEY (64 hex
 * digits or base64 of 32 bytes, standard or URL alphabet, padding optional,
 * surrounding whitespace ignored) if set, even if empty, else from `path`,
 * created with 32 random bytes and mode 0600 (O_EXCL, fsync'ed) if missing.
 * A file that exists with any group/other permission bit, that is not a
 * regular file, or that is not exactly 32 bytes is an error (never
 * repaired).  Returns 0, or -1 with a malloc'ed message naming the path or
 * the variable in *err (err may be NULL; never containing key material).
 */
int mh_master_key_load(const char *path, unsigned char key[MH_KEY_LEN], char **err);

/** Overwrite secrets in memory (not optimised away). */
void mh_wipe(void *p, size_t len);

#endif
