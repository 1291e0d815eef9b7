/*
 * Cryptography: AES-256-GCM sealing (and that any damage is detected),
 * SHA-256, hex, API tokens, Argon2id password hashes, the master key (file
 * and environment) and wiping.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "mh_crypto.h"

static const unsigned char key1[MH_KEY_LEN] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

static void key2_init(unsigned char k[MH_KEY_LEN])
{
    memcpy(k, key1, MH_KEY_LEN);
    k[31] ^= 0x01; /* one bit away */
}

/* Seals pt (len) with key1 and aad; returns the malloc'ed blob. */
static unsigned char *seal(const char *aad, const void *pt, size_t len, size_t *out_len)
{
    unsigned char *out = malloc(len + MH_SEAL_OVERHEAD);
    assert_non_null(out);
    assert_int_equal(mh_seal(key1, aad, aad ? strlen(aad) : 0, pt, len, out, out_len), 0);
    assert_int_equal(*out_len, len + MH_SEAL_OVERHEAD);
    return out;
}

static int unseal(const unsigned char *key, const char *aad, const unsigned char *blob, size_t blob_len,
                  unsigned char *out, size_t *out_len)
{
    return mh_unseal(key, aad, aad ? strlen(aad) : 0, blob, blob_len, out, out_len);
}

/* ------------------------------------------------------------ sealing */

static void test_seal_roundtrip(void **state)
{
    (void)state;
    static const size_t lens[] = {1, 15, 16, 17, 100, 4096, 100000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t len = lens[i], blen = 0, olen = 0;
        unsigned char *pt = malloc(len);
        assert_non_null(pt);
        for (size_t k = 0; k < len; k++)
            pt[k] = (unsigned char)(k * 7 + i);
        unsigned char *blob = seal("msg:1:2", pt, len, &blen);
        assert_int_equal(blob[0], 0x01);
        /* the ciphertext is not the plaintext */
        if (len >= 16)
            assert_memory_not_equal(blob + 13, pt, 16);
        unsigned char *out = malloc(len);
        assert_non_null(out);
        assert_int_equal(unseal(key1, "msg:1:2", blob, blen, out, &olen), 0);
        assert_int_equal(olen, len);
        assert_memory_equal(out, pt, len);
        free(out);
        free(blob);
        free(pt);
    }
}

static void test_seal_empty_and_no_aad(void **state)
{
    (void)state;
    unsigned char blob[MH_SEAL_OVERHEAD], out[1];
    size_t blen = 0, olen = 99;
    assert_int_equal(mh_seal(key1, NULL, 0, NULL, 0, blob, &blen), 0);
    assert_int_equal(blen, MH_SEAL_OVERHEAD);
    assert_int_equal(mh_unseal(key1, NULL, 0, blob, blen, out, &olen), 0);
    assert_int_equal(olen, 0);
    /* an empty plaintext is still authenticated: a different aad fails */
    assert_int_equal(mh_unseal(key1, "x", 1, blob, blen, out, &olen), -1);
    blob[MH_SEAL_OVERHEAD - 1] ^= 0x40;
    assert_int_equal(mh_unseal(key1, NULL, 0, blob, blen, out, &olen), -1);

    /* aad given at seal time is required at unseal time */
    unsigned char *b2 = seal("account:1:work", "secret", 6, &blen);
    unsigned char o2[6];
    assert_int_equal(unseal(key1, NULL, b2, blen, o2, &olen), -1);
    assert_int_equal(unseal(key1, "account:1:work", b2, blen, o2, &olen), 0);
    assert_memory_equal(o2, "secret", 6);
    free(b2);
}

static void test_seal_nonce_unique(void **state)
{
    (void)state;
    size_t l1, l2;
    unsigned char *a = seal("aad", "same text", 9, &l1);
    unsigned char *b = seal("aad", "same text", 9, &l2);
    assert_memory_not_equal(a + 1, b + 1, 12);        /* nonce */
    assert_memory_not_equal(a + 13, b + 13, l1 - 13); /* ciphertext and tag */
    free(a);
    free(b);
}

static void test_unseal_wrong_key_aad(void **state)
{
    (void)state;
    static const char pt[] = "From: alice@example.com\r\n\r\nhello";
    size_t blen, olen = 12345;
    unsigned char *blob = seal("msg:1:2", pt, sizeof pt, &blen);
    unsigned char out[sizeof pt], k2[MH_KEY_LEN];
    key2_init(k2);

    memset(out, 0x5a, sizeof out);
    assert_int_equal(unseal(k2, "msg:1:2", blob, blen, out, &olen), -1);
    assert_int_equal(olen, 12345); /* untouched */
    /* nothing usable is left in out */
    for (size_t i = 0; i < sizeof out; i++)
        assert_int_equal(out[i], 0);
    assert_int_equal(unseal(key1, "msg:2:2", blob, blen, out, &olen), -1);
    assert_int_equal(unseal(key1, "msg:1:2 ", blob, blen, out, &olen), -1);
    assert_int_equal(unseal(key1, "", blob, blen, out, &olen), -1);
    assert_int_equal(unseal(key1, "msg:1:2", blob, blen, out, &olen), 0);
    assert_string_equal((char *)out, pt);
    free(blob);
}

static void test_unseal_every_tamper(void **state)
{
    (void)state;
    static const char pt[] = "every byte of the blob is covered by the tag";
    static const unsigned char flips[] = {0x01, 0x80, 0xff};
    size_t blen, olen;
    unsigned char *blob = seal("msg:7:9", pt, sizeof pt, &blen);
    unsigned char out[sizeof pt];
    for (size_t i = 0; i < blen; i++) {
        for (size_t f = 0; f < sizeof flips; f++) {
            blob[i] ^= flips[f];
            if (unseal(key1, "msg:7:9", blob, blen, out, &olen) != -1)
                fail_msg("a change of byte %zu (xor 0x%02x) was not detected", i, flips[f]);
            blob[i] ^= flips[f];
        }
    }
    /* and undamaged it still opens */
    assert_int_equal(unseal(key1, "msg:7:9", blob, blen, out, &olen), 0);
    assert_memory_equal(out, pt, sizeof pt);
    free(blob);
}

static void test_unseal_truncated_and_version(void **state)
{
    (void)state;
    static const char pt[] = "short";
    size_t blen, olen;
    unsigned char *blob = seal(NULL, pt, sizeof pt, &blen);
    unsigned char out[sizeof pt + 64];
    for (size_t n = 0; n < blen; n++)
        if (mh_unseal(key1, NULL, 0, blob, n, out, &olen) != -1)
            fail_msg("a blob cut to %zu bytes was accepted", n);
    /* extra bytes at the end are damage too */
    unsigned char *longer = malloc(blen + 1);
    assert_non_null(longer);
    memcpy(longer, blob, blen);
    longer[blen] = 0;
    assert_int_equal(mh_unseal(key1, NULL, 0, longer, blen + 1, out, &olen), -1);
    free(longer);

    /* an unknown format version */
    for (int v = 0; v < 256; v++) {
        if (v == 1)
            continue;
        blob[0] = (unsigned char)v;
        assert_int_equal(mh_unseal(key1, NULL, 0, blob, blen, out, &olen), -1);
    }
    blob[0] = 1;
    assert_int_equal(mh_unseal(key1, NULL, 0, blob, blen, out, &olen), 0);
    assert_int_equal(mh_unseal(key1, NULL, 0, NULL, blen, out, &olen), -1);
    free(blob);
}

/* ------------------------------------------------------------ sha256, hex, tokens, wipe */

static void sha_hex(const char *s, size_t len, char hex[65])
{
    unsigned char d[32];
    mh_sha256(s, len, d);
    mh_hex(d, 32, hex);
}

static void test_sha256_hex(void **state)
{
    (void)state;
    char hex[65];
    sha_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(two_blocks, strlen(two_blocks), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    static const unsigned char bin[] = {0x00, 0x0f, 0xa5, 0xff};
    char h[9];
    memset(h, 'x', sizeof h);
    mh_hex(bin, sizeof bin, h);
    assert_string_equal(h, "000fa5ff");
    mh_hex(bin, 0, h);
    assert_string_equal(h, "");
}

static int b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void test_token(void **state)
{
    (void)state;
    enum { N = 200 };
    char(*toks)[MH_TOKEN_LEN + 1] = calloc(N, sizeof *toks);
    assert_non_null(toks);
    for (int i = 0; i < N; i++) {
        memset(toks[i], 'x', sizeof toks[i]);
        assert_int_equal(mh_token_new(toks[i]), 0);
        assert_int_equal(strlen(toks[i]), MH_TOKEN_LEN);
        assert_int_equal(strncmp(toks[i], "mh_", 3), 0);
        for (int k = 3; k < MH_TOKEN_LEN; k++)
            if (!b64url_char(toks[i][k]))
                fail_msg("token character %d is '%c'", k, toks[i][k]);
        /* 32 bytes = 256 bits: the 43rd character carries 4 bits and two zero bits */
        assert_non_null(strchr("AEIMQUYcgkosw048", toks[i][MH_TOKEN_LEN - 1]));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(toks[i], toks[j]);
    }
    free(toks);
}

static void test_wipe(void **state)
{
    (void)state;
    unsigned char buf[64];
    memset(buf, 0xa5, sizeof buf);
    mh_wipe(buf + 8, 32);
    for (size_t i = 0; i < sizeof buf; i++)
        assert_int_equal(buf[i], i >= 8 && i < 40 ? 0 : 0xa5);
    mh_wipe(NULL, 10); /* harmless */
}

/* ------------------------------------------------------------ passwords */

static void test_password_fast(void **state)
{
    (void)state;
    setenv("MAILHUB_ARGON2", "t=1,m=1024,p=1", 1);
    char *h1 = mh_password_hash("correct horse battery staple");
    char *h2 = mh_password_hash("correct horse battery staple");
    assert_non_null(h1);
    assert_non_null(h2);
    assert_int_equal(strncmp(h1, "$argon2id$v=19$m=1024,t=1,p=1$", 30), 0);
    assert_string_not_equal(h1, h2); /* random salt */
    assert_null(strstr(h1, "horse"));
    assert_int_equal(mh_password_verify(h1, "correct horse battery staple"), 1);
    assert_int_equal(mh_password_verify(h2, "correct horse battery staple"), 1);
    assert_int_equal(mh_password_verify(h1, "correct horse battery stapl"), 0);
    assert_int_equal(mh_password_verify(h1, "Correct horse battery staple"), 0);
    assert_int_equal(mh_password_verify(h1, ""), 0);
    assert_int_equal(mh_password_verify(h1, NULL), 0);

    /* UTF-8 and empty passwords */
    char *h3 = mh_password_hash("\xe5\xaf\x86\xe7\xa0\x81-\xe5\xaf\x86\xe7\xa0\x81"); /* 密码-密码 */
    assert_non_null(h3);
    assert_int_equal(mh_password_verify(h3, "\xe5\xaf\x86\xe7\xa0\x81-\xe5\xaf\x86\xe7\xa0\x81"), 1);
    assert_int_equal(mh_password_verify(h3, "\xe5\xaf\x86\xe7\xa0\x81"), 0);
    char *h4 = mh_password_hash("");
    assert_non_null(h4);
    assert_int_equal(mh_password_verify(h4, ""), 1);
    assert_int_equal(mh_password_verify(h4, " "), 0);

    /* another parameter set (and order) is honoured and still verifies */
    setenv("MAILHUB_ARGON2", "p=2,m=2048,t=2", 1);
    char *h5 = mh_password_hash("pw-12345678");
    assert_non_null(h5);
    assert_int_equal(strncmp(h5, "$argon2id$v=19$m=2048,t=2,p=2$", 30), 0);
    assert_int_equal(mh_password_verify(h5, "pw-12345678"), 1);
    setenv("MAILHUB_ARGON2", "t=1,m=1024,p=1", 1);
    free(h1);
    free(h2);
    free(h3);
    free(h4);
    free(h5);
}

static void test_password_defaults(void **state)
{
    (void)state;
    unsetenv("MAILHUB_ARGON2");
    char *h = mh_password_hash("s3cret passphrase");
    assert_non_null(h);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "$argon2id$v=19$m=%d,t=%d,p=%d$", MH_ARGON2_M_KIB, MH_ARGON2_T,
             MH_ARGON2_P);
    assert_int_equal(strncmp(h, prefix, strlen(prefix)), 0);
    assert_string_equal(prefix, "$argon2id$v=19$m=65536,t=3,p=1$");
    /* verification follows the parameters in the string, not the environment */
    setenv("MAILHUB_ARGON2", "t=1,m=1024,p=1", 1);
    assert_int_equal(mh_password_verify(h, "s3cret passphrase"), 1);
    assert_int_equal(mh_password_verify(h, "s3cret passphrasE"), 0);
    free(h);

    /* a malformed MAILHUB_ARGON2 is not half-applied: the defaults are used (with a warning) */
    static const char *bad[] = {"t=1,m=1024,p=1,x=5", "t=0,m=1024,p=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("MAILHUB_ARGON2", bad[i], 1);
        h = mh_password_hash("pw");
        assert_non_null(h);
        assert_int_equal(strncmp(h, "$argon2id$v=19$m=65536,t=3,p=1$", 31), 0);
        free(h);
    }
    setenv("MAILHUB_ARGON2", "t=1,m=1024,p=1", 1);
}

static void test_password_malformed(void **state)
{
    (void)state;
    setenv("MAILHUB_ARGON2", "t=1,m=1024,p=1", 1);
    char *h = mh_password_hash("pw");
    assert_non_null(h);
    size_t n = strlen(h);

    assert_int_equal(mh_password_verify(NULL, "pw"), 0);
    assert_int_equal(mh_password_verify("", "pw"), 0);
    assert_int_equal(mh_password_verify("pw", "pw"), 0);
    assert_int_equal(mh_password_verify("$argon2id$", "pw"), 0);
    assert_int_equal(mh_password_verify("$argon2id$v=19$m=1024,t=1,p=1$$", "pw"), 0);

    /* every truncation of a good string */
    char *cut = malloc(n + 1);
    assert_non_null(cut);
    for (size_t i = 0; i < n; i++) {
        memcpy(cut, h, i);
        cut[i] = '\0';
        if (mh_password_verify(cut, "pw") != 0)
            fail_msg("a PHC string cut to %zu characters verified", i);
    }
    /* another variant, another version, a changed hash, hostile parameters */
    char *alt = malloc(n + 64);
    assert_non_null(alt);
    snprintf(alt, n + 64, "$argon2i$%s", h + strlen("$argon2id$"));
    assert_int_equal(mh_password_verify(alt, "pw"), 0);
    snprintf(alt, n + 64, "%s", h);
    alt[n - 2] = alt[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(mh_password_verify(alt, "pw"), 0);
    const char *rest = strchr(h + strlen("$argon2id$v=19$"), '$'); /* "$salt$hash" */
    assert_non_null(rest);
    snprintf(alt, n + 64, "$argon2id$v=16$m=1024,t=1,p=1%s", rest);
    assert_int_equal(mh_password_verify(alt, "pw"), 0);
    snprintf(alt, n + 64, "$argon2id$v=19$m=4294967295,t=1,p=1%s", rest);
    assert_int_equal(mh_password_verify(alt, "pw"), 0); /* would ask for 4 TiB */
    snprintf(alt, n + 64, "$argon2id$v=19$m=1024,t=4000000000,p=1%s", rest);
    assert_int_equal(mh_password_verify(alt, "pw"), 0);
    snprintf(alt, n + 64, "$argon2id$v=19$m=1024,t=1,p=1%s", rest);
    assert_int_equal(mh_password_verify(alt, "pw"), 1); /* the control: the same string rebuilt */
    free(alt);
    free(cut);
    free(h);
}

/* ------------------------------------------------------------ master key */

static char *tmpdir_new(void)
{
    char tmpl[] = "/tmp/mh-test-crypto-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_master_key_file(void **state)
{
    (void)state;
    unsetenv("MAILHUB_MASTER_KEY");
    mode_t old = umask(0);
    char *dir = tmpdir_new();
    char *path = path_in(dir, "master.key");
    unsigned char k1[MH_KEY_LEN], k2[MH_KEY_LEN], zero[MH_KEY_LEN] = {0};
    char *err = NULL;

    assert_int_equal(mh_master_key_load(path, k1, &err), 0);
    assert_null(err);
    assert_memory_not_equal(k1, zero, MH_KEY_LEN);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600); /* even with umask 0 */
    assert_int_equal(st.st_size, MH_KEY_LEN);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char disk[MH_KEY_LEN + 1];
    assert_int_equal(fread(disk, 1, sizeof disk, f), MH_KEY_LEN);
    fclose(f);
    assert_memory_equal(disk, k1, MH_KEY_LEN);

    /* loaded again: the same key */
    assert_int_equal(mh_master_key_load(path, k2, &err), 0);
    assert_null(err);
    assert_memory_equal(k1, k2, MH_KEY_LEN);
    assert_int_equal(mh_master_key_load(path, k2, NULL), 0); /* err may be NULL */

    /* another path: another key */
    char *path2 = path_in(dir, "other.key");
    assert_int_equal(mh_master_key_load(path2, k2, &err), 0);
    assert_memory_not_equal(k1, k2, MH_KEY_LEN);

    umask(old);
    unlink(path);
    unlink(path2);
    rmdir(dir);
    free(path);
    free(path2);
    free(dir);
}

static void expect_key_error(const char *path, const char *needle1, const char *needle2)
{
    unsigned char k[MH_KEY_LEN];
    char *err = NULL;
    assert_int_equal(mh_master_key_load(path, k, &err), -1);
    assert_non_null(err);
    print_message("    error: %s\n", err);
    assert_non_null(strstr(err, path));
    if (needle1 != NULL)
        assert_non_null(strstr(err, needle1));
    if (needle2 != NULL)
        assert_non_null(strstr(err, needle2));
    free(err);
    assert_int_equal(mh_master_key_load(path, k, NULL), -1);
}

static void test_master_key_file_refused(void **state)
{
    (void)state;
    unsetenv("MAILHUB_MASTER_KEY");
    char *dir = tmpdir_new();
    char *path = path_in(dir, "master.key");
    unsigned char bytes[64];
    memset(bytes, 0x42, sizeof bytes);

    write_file(path, bytes, MH_KEY_LEN, 0644);
    expect_key_error(path, "0644", "chmod 600");
    write_file(path, bytes, MH_KEY_LEN, 0640);
    expect_key_error(path, "0640", NULL);
    write_file(path, bytes, MH_KEY_LEN, 0604);
    expect_key_error(path, "0604", NULL);
    /* the file was not replaced or "fixed" */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0604);

    write_file(path, bytes, MH_KEY_LEN - 1, 0600);
    expect_key_error(path, "31 bytes", NULL);
    write_file(path, bytes, MH_KEY_LEN + 1, 0600);
    expect_key_error(path, "33 bytes", NULL);
    write_file(path, bytes, 0, 0600);
    expect_key_error(path, "0 bytes", NULL);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0); /* an empty file is not silently filled */

    /* 0400 is fine (read-only for the owner) */
    write_file(path, bytes, MH_KEY_LEN, 0400);
    unsigned char k[MH_KEY_LEN];
    char *err = NULL;
    assert_int_equal(mh_master_key_load(path, k, &err), 0);
    assert_memory_equal(k, bytes, MH_KEY_LEN);
    unlink(path);

    /* a directory, a missing directory */
    assert_int_equal(mkdir(path, 0700), 0);
    expect_key_error(path, "not a regular file", NULL);
    rmdir(path);
    char *missing = path_in(dir, "no/such/dir/master.key");
    expect_key_error(missing, "No such file or directory", NULL);
    free(missing);

    assert_int_equal(mh_master_key_load(NULL, k, &err), -1);
    assert_non_null(err);
    free(err);

    rmdir(dir);
    free(path);
    free(dir);
}

static void expect_env_key(const char *value, const unsigned char *want)
{
    unsigned char k[MH_KEY_LEN];
    char *err = NULL;
    setenv("MAILHUB_MASTER_KEY", value, 1);
    assert_int_equal(mh_master_key_load("/nonexistent-dir/master.key", k, &err), 0);
    assert_null(err);
    assert_memory_equal(k, want, MH_KEY_LEN);
}

static void expect_env_error(const char *value)
{
    unsigned char k[MH_KEY_LEN];
    char *err = NULL;
    setenv("MAILHUB_MASTER_KEY", value, 1);
    assert_int_equal(mh_master_key_load("/nonexistent-dir/master.key", k, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, "MAILHUB_MASTER_KEY"));
    /* no part of the value (8 characters or more) appears in the message */
    size_t n = strlen(value);
    for (size_t i = 0; i + 8 <= n; i++) {
        char part[9];
        memcpy(part, value + i, 8);
        part[8] = '\0';
        if (strstr(err, part) != NULL)
            fail_msg("the error \"%s\" shows part of the value", err);
    }
    free(err);
}

static void test_master_key_env(void **state)
{
    (void)state;
    unsigned char want[MH_KEY_LEN];
    for (int i = 0; i < MH_KEY_LEN; i++)
        want[i] = (unsigned char)(0xf0 + i * 3);
    char hex[2 * MH_KEY_LEN + 1];
    mh_hex(want, MH_KEY_LEN, hex);
    assert_string_equal(hex, "f0f3f6f9fcff0205080b0e1114171a1d202326292c2f3235383b3e4144474a4d");

    expect_env_key(hex, want);
    expect_env_key("F0F3F6F9FCFF0205080B0E1114171A1D202326292C2F3235383B3E4144474A4D", want);
    expect_env_key("  f0f3f6f9fcff0205080b0e1114171a1d202326292c2f3235383b3e4144474a4d\n", want);
    /* base64 of the same 32 bytes: standard with and without padding, URL alphabet */
    expect_env_key("8PP2+fz/AgUICw4RFBcaHSAjJiksLzI1ODs+QURHSk0=", want);
    expect_env_key("8PP2+fz/AgUICw4RFBcaHSAjJiksLzI1ODs+QURHSk0", want);
    expect_env_key("8PP2-fz_AgUICw4RFBcaHSAjJiksLzI1ODs-QURHSk0", want);
    /* the file is not touched when the environment has the key */
    struct stat st;
    assert_int_equal(stat("/nonexistent-dir", &st), -1);

    expect_env_error("");
    expect_env_error("not-a-key");
    expect_env_error("f0f3f6f9fcff0205080b0e1114171a1d202326292c2f3235383b3e4144474a4");   /* 63 hex */
    expect_env_error("f0f3f6f9fcff0205080b0e1114171a1d202326292c2f3235383b3e4144474a4d0"); /* 65 hex */
    expect_env_error("g0f3f6f9fcff0205080b0e1114171a1d202326292c2f3235383b3e4144474a4d");  /* not hex */
    expect_env_error("8PP2+fz/AgUICw4RFBcaHSAjJiksLzI1ODs+QURHSk==");                      /* 31 bytes */
    expect_env_error("8PP2+fz/AgUICw4RFBcaHSAjJiksLzI1ODs+QURHSk1");   /* stray low bits */
    expect_env_error("8PP2+fz/AgUICw4RFBcaHSAjJiksLzI1ODs+QURHSk0=="); /* too much padding */
    expect_env_error("8PP2+fz/AgUICw4RFBc*HSAjJiksLzI1ODs+QURHSk0=");  /* bad character */
    expect_env_error("correct horse battery staple correct horse battery staple 1234");
    unsetenv("MAILHUB_MASTER_KEY");
}

static int group_setup(void **state)
{
    (void)state;
    setenv("MAILHUB_ARGON2", "t=1,m=1024,p=1", 1);
    unsetenv("MAILHUB_MASTER_KEY");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_roundtrip),
        cmocka_unit_test(test_seal_empty_and_no_aad),
        cmocka_unit_test(test_seal_nonce_unique),
        cmocka_unit_test(test_unseal_wrong_key_aad),
        cmocka_unit_test(test_unseal_every_tamper),
        cmocka_unit_test(test_unseal_truncated_and_version),
        cmocka_unit_test(test_sha256_hex),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_wipe),
        cmocka_unit_test(test_password_fast),
        cmocka_unit_test(test_password_defaults),
        cmocka_unit_test(test_password_malformed),
        cmocka_unit_test(test_master_key_file),
        cmocka_unit_test(test_master_key_file_refused),
        cmocka_unit_test(test_master_key_env),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
