/* The accounts of `haulwatch web` in PostgreSQL (schema/009_web.sql), as both front ends change
 * them: `haulwatch user` (cli/user_cmd.c, blocking) and the admin API (web/web_admin.c, on the
 * web process's pool). One implementation of the checks (names, roles, region codes,
 * passwords), of the hashing (libsodium crypto_pwhash_str, argon2id; slow on purpose: the web
 * process calls it on the thread pool) and of the statements, each taking the actor's scope and
 * writing its admin_audit row (schema/011_admin_audit.sql) in the same statement. The command
 * line acts as actor 'cli' with scope '{%}' (everything). Owns nothing between calls. */
#ifndef HW_USER_STORE_H
#define HW_USER_STORE_H

#include <sodium.h>

#include "base/common.h"
#include "base/token.h"

#define HW_USER_MAX_REGIONS 32
#define HW_USER_MAX_PASSWORD 1024
#define HW_USER_API_TOKEN_PREFIX "hwt_"
#define HW_USER_API_TOKEN_LEN (4 + HW_TOKEN_LEN)

/* 1 when s is a user name: 1-64 of A-Z a-z 0-9 _ . @ - (the CHECK of web_users.name). */
int hw_user_name_ok(const char *s);
/* 1 when s is viewer, operator or admin. */
int hw_user_role_ok(const char *s);
/* 1 when s is six ASCII digits (a GB/T 2260 code). */
int hw_user_region_ok(const char *s);
/* The PostgreSQL text[] literal of n codes ("{320100,320200}") into out; -E2BIG if it does not
 * fit. */
int hw_user_regions_literal(const char (*codes)[8], size_t n, char *out, size_t cap) HW_MUST_CHECK;

/* Checks a password (1..HW_USER_MAX_PASSWORD bytes of UTF-8 without NUL) and hashes it into out.
 * -EINVAL (not a password), -ENOMEM (libsodium could not get its 64 MiB). Slow: ~0.1 s. */
int hw_user_hash_password(const char *pw, size_t len, char out[crypto_pwhash_STRBYTES])
    HW_MUST_CHECK;
/* A new API token ("hwt_" and 64 hex: shown once) and the bytea text of its SHA-256 (stored). */
int hw_user_token_new(char token[HW_USER_API_TOKEN_LEN + 1],
                      char hash_bytea[2 + 2 * HW_TOKEN_HASH_LEN + 1]) HW_MUST_CHECK;

/* The statements. Parameters, all text: */

/* $1 name, $2 role, $3 password hash (NULL: tokens only), $4 regions (text[] literal), $5 actor
 * user id (NULL for the CLI), $6 actor name. Returns the new user's id; a taken name is a
 * unique_violation (23505). */
#define HW_USER_SQL_ADD                                                                          \
  "WITH u AS (INSERT INTO web_users (name, role, password_hash) VALUES ($1, $2, $3) RETURNING "  \
  "id, created_at), r AS (INSERT INTO web_user_regions (user_id, region) SELECT DISTINCT u.id, " \
  "c FROM u, unnest($4::text[]) c), a AS (INSERT INTO admin_audit (user_id, user_name, action, " \
  "object, detail) SELECT $5::bigint, $6, 'user.add', $1, jsonb_build_object('role', $2::text, " \
  "'regions', to_jsonb($4::text[]), 'password', $3::text IS NOT NULL) FROM u) "                  \
  "SELECT id, created_at FROM u"

/* The users within a scope: every region of theirs lies in $1 (a text[] of LIKE patterns, as
 * hw_web_user.scope). $2: a name to start after ('' for the first page), $3: the page size. */
#define HW_USER_SQL_IN_SCOPE(u)                                                                  \
  "NOT EXISTS (SELECT 1 FROM web_user_regions x WHERE x.user_id = " u ".id AND NOT x.region "    \
  "LIKE ANY ($1::text[]))"
#define HW_USER_SQL_LIST                                                                         \
  "SELECT u.name, u.role, coalesce((SELECT string_agg(r.region, ',' ORDER BY r.region) FROM "    \
  "web_user_regions r WHERE r.user_id = u.id), ''), u.disabled, u.created_at, "                  \
  "(SELECT max(at) FROM web_login_attempts l WHERE l.user_name = u.name AND l.ok) "              \
  "FROM web_users u WHERE " HW_USER_SQL_IN_SCOPE("u") " AND u.name > $2 ORDER BY u.name "         \
  "LIMIT $3::integer"

/* $1 scope, $2 name, $3 actor id, $4 actor name: disables a user within the scope, ends its
 * sessions, revokes its tokens. One row (the count disabled: 0 when no such user in scope). */
#define HW_USER_SQL_DISABLE                                                                      \
  "WITH u AS (UPDATE web_users w SET disabled = true WHERE w.name = $2 AND "                     \
  HW_USER_SQL_IN_SCOPE("w") " RETURNING id), "                                                   \
  "s AS (DELETE FROM web_sessions WHERE user_id IN (SELECT id FROM u) RETURNING 1), "            \
  "t AS (UPDATE web_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND user_id IN "      \
  "(SELECT id FROM u) RETURNING 1), "                                                            \
  "a AS (INSERT INTO admin_audit (user_id, user_name, action, object, detail) SELECT "           \
  "$3::bigint, $4, 'user.disable', $2, jsonb_build_object('sessions_ended', (SELECT count(*) "   \
  "FROM s), 'tokens_revoked', (SELECT count(*) FROM t)) FROM u) SELECT count(*) FROM u"

/* $1 scope, $2 name, $3 token hash (bytea text), $4 actor id, $5 actor name: a new API token for
 * an enabled user within the scope. One row: the count made (0: no such enabled user in scope). */
#define HW_USER_SQL_TOKEN                                                                        \
  "WITH u AS (SELECT w.id FROM web_users w WHERE w.name = $2 AND NOT w.disabled AND "            \
  HW_USER_SQL_IN_SCOPE("w") "), t AS (INSERT INTO web_tokens (token_hash, user_id) SELECT "      \
  "$3::bytea, id FROM u RETURNING user_id), a AS (INSERT INTO admin_audit (user_id, user_name, " \
  "action, object) SELECT $4::bigint, $5, 'user.token', $2 FROM t) SELECT count(*) FROM t"

#endif
