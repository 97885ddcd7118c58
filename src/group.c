/* group.c: group chats with no server (see group.h): signed operations
 * folded in one order, signed messages numbered per author, and the SYNC
 * that lets members fill each other's gaps. */
#include "group.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  uint8_t id[16]; /* BLAKE2b-128 of its bytes */
  uint64_t lamport;
  int kind;
  uint8_t author[LC_KEY_BYTES];
  uint8_t target[LC_KEY_BYTES];
  uint8_t *bytes;
  size_t len;
} grp_op;

typedef struct {
  uint8_t author[LC_KEY_BYTES];
  uint64_t contig; /* 1..contig all held */
  uint64_t *above; /* held beyond a gap, ascending */
  size_t nabove;
} grp_vec;

struct lc__group {
  uint8_t id[LC_GROUP_ID_BYTES];
  grp_op *ops; /* in fold order: (lamport, id) */
  size_t nops;
  /* the fold */
  int known;
  char name[LC_GROUP_NAME_MAX + 1];
  lc__gmember *members;
  size_t nmembers;
  uint8_t (*ever)[LC_KEY_BYTES];
  size_t never;
  uint8_t ops_hash[16];
  uint64_t lamport; /* the highest seen, of operations and messages */
  grp_vec *vec;
  size_t nvec;
};

struct lc__grp {
  const lc__identity *self;
  lc__grp_io io;
  lc__group **groups;
  size_t ngroups;
  lc__grp_stats st;
};

static int key_eq(const uint8_t *a, const uint8_t *b) {
  return memcmp(a, b, LC_KEY_BYTES) == 0;
}

/* ---- groups and the fold -------------------------------------------------
 */

lc__grp *lc__grp_new(const lc__identity *self, const lc__grp_io *io) {
  lc__grp *e = calloc(1, sizeof *e);
  if (!e)
    return NULL;
  e->self = self;
  e->io = *io;
  return e;
}

static void group_free(lc__group *g) {
  for (size_t i = 0; i < g->nops; i++)
    free(g->ops[i].bytes);
  for (size_t i = 0; i < g->nvec; i++)
    free(g->vec[i].above);
  free(g->ops);
  free(g->members);
  free(g->ever);
  free(g->vec);
  free(g);
}

void lc__grp_free(lc__grp *e) {
  if (!e)
    return;
  for (size_t i = 0; i < e->ngroups; i++)
    group_free(e->groups[i]);
  free(e->groups);
  free(e);
}

/* Any group we hold operations of, known (its CREATE held) or not. */
static lc__group *group_get(const lc__grp *e, const uint8_t *id) {
  for (size_t i = 0; i < e->ngroups; i++)
    if (memcmp(e->groups[i]->id, id, LC_GROUP_ID_BYTES) == 0)
      return e->groups[i];
  return NULL;
}

static lc__group *group_add(lc__grp *e, const uint8_t *id) {
  lc__group *g = group_get(e, id);
  if (g)
    return g;
  if (e->ngroups >= LC_GROUPS_MAX)
    return NULL;
  /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
  lc__group **v = realloc(e->groups, (e->ngroups + 1) * sizeof *v);
  if (!v)
    return NULL;
  e->groups = v;
  g = calloc(1, sizeof *g);
  if (!g)
    return NULL;
  memcpy(g->id, id, LC_GROUP_ID_BYTES);
  e->groups[e->ngroups++] = g;
  return g;
}

size_t lc__grp_count(const lc__grp *e) {
  size_t n = 0;
  for (size_t i = 0; i < e->ngroups; i++)
    n += e->groups[i]->known;
  return n;
}

const lc__group *lc__grp_at(const lc__grp *e, size_t i) {
  for (size_t k = 0; k < e->ngroups; k++)
    if (e->groups[k]->known && i-- == 0)
      return e->groups[k];
  return NULL;
}

const lc__group *lc__grp_find(const lc__grp *e, const uint8_t *id) {
  const lc__group *g = group_get(e, id);
  return g && g->known ? g : NULL;
}

void lc__group_id(const lc__group *g, uint8_t id[LC_GROUP_ID_BYTES]) {
  memcpy(id, g->id, LC_GROUP_ID_BYTES);
}
const char *lc__group_name(const lc__group *g) {
  return g->name;
}
size_t lc__group_members(const lc__group *g, const lc__gmember **out) {
  *out = g->members;
  return g->nmembers;
}
size_t lc__group_nops(const lc__group *g) {
  return g->nops;
}
void lc__group_ops_hash(const lc__group *g, uint8_t out[16]) {
  memcpy(out, g->ops_hash, 16);
}

static lc__gmember *member_find(const lc__group *g, const uint8_t *key) {
  for (size_t i = 0; i < g->nmembers; i++)
    if (key_eq(g->members[i].key, key))
      return &g->members[i];
  return NULL;
}

int lc__group_is_member(const lc__group *g, const uint8_t *key) {
  return member_find(g, key) != NULL;
}

static int ever_has(const lc__group *g, const uint8_t *key) {
  for (size_t i = 0; i < g->never; i++)
    if (key_eq(g->ever[i], key))
      return 1;
  return 0;
}

int lc__group_was_member(const lc__group *g, const uint8_t *key) {
  return ever_has(g, key);
}

static int fold_add(lc__group *g, const uint8_t *key, int owner) {
  if (member_find(g, key) || g->nmembers >= LC_GROUP_MEMBERS_MAX)
    return 0;
  g->members[g->nmembers].owner = owner;
  memcpy(g->members[g->nmembers++].key, key, LC_KEY_BYTES);
  if (!ever_has(g, key))
    memcpy(g->ever[g->never++], key, LC_KEY_BYTES);
  return 1;
}

static void fold_remove(lc__group *g, const uint8_t *key) {
  lc__gmember *m = member_find(g, key);
  if (!m)
    return;
  /* keep the join order: the oldest member inherits ownership */
  size_t i = (size_t)(m - g->members);
  memmove(&g->members[i], &g->members[i + 1],
          (g->nmembers - i - 1) * sizeof *m);
  g->nmembers--;
  for (i = 0; i < g->nmembers; i++)
    if (g->members[i].owner)
      return;
  if (g->nmembers)
    g->members[0].owner = 1;
}

/* Folds every operation in order; returns 1 if members, owners or the
 * name changed (or the group became known). */
static int group_fold(lc__group *g) {
  int was_known = g->known;
  size_t old_n = g->nmembers;
  lc__gmember *old = g->members;
  char old_name[sizeof g->name];
  memcpy(old_name, g->name, sizeof old_name);
  /* room for everyone an operation ever names */
  size_t cap = LC_GROUP_MEMBERS_MAX + g->nops + 1;
  lc__gmember *m = calloc(cap, sizeof *m);
  uint8_t(*ever)[LC_KEY_BYTES] = calloc(cap, sizeof *ever);
  if (!m || !ever) {
    free(m);
    free(ever);
    return 0; /* the old fold stays */
  }
  g->members = m;
  g->nmembers = 0;
  free(g->ever);
  g->ever = ever;
  g->never = 0;
  g->known = 0;
  g->name[0] = '\0';
  uint8_t *ids = malloc(g->nops * 16 + 1);
  for (size_t i = 0; i < g->nops; i++) {
    grp_op *op = &g->ops[i];
    if (ids)
      memcpy(ids + i * 16, op->id, 16);
    lc__gop_wire w;
    uint8_t(*mem)[LC_KEY_BYTES] = NULL;
    if (op->kind == LC_GOP_CREATE || op->kind == LC_GOP_RENAME) {
      mem = malloc(LC_GROUP_MEMBERS_MAX * LC_KEY_BYTES);
      if (!mem || lc__gop_decode(&w, mem, op->bytes, op->len) < 0) {
        free(mem);
        continue;
      }
    }
    lc__gmember *author = member_find(g, op->author);
    switch (op->kind) {
    case LC_GOP_CREATE:
      if (!g->known) {
        g->known = 1;
        fold_add(g, op->author, 1);
        for (size_t k = 0; k < w.nmembers; k++)
          if (!key_eq(mem[k], op->author))
            fold_add(g, mem[k], 0);
        snprintf(g->name, sizeof g->name, "%.*s", (int)w.name_len, w.name);
      }
      break;
    case LC_GOP_ADD:
      if (g->known && author)
        fold_add(g, op->target, 0);
      break;
    case LC_GOP_REMOVE:
      if (g->known && member_find(g, op->target) &&
          (key_eq(op->author, op->target) || (author && author->owner)))
        fold_remove(g, op->target);
      break;
    case LC_GOP_RENAME:
      if (g->known && author)
        snprintf(g->name, sizeof g->name, "%.*s", (int)w.name_len, w.name);
      break;
    }
    free(mem);
  }
  if (ids) {
    lc__hash(g->ops_hash, 16, ids, g->nops * 16);
    free(ids);
  }
  int changed = !was_known || g->nmembers != old_n ||
                strcmp(old_name, g->name) != 0 ||
                (old && memcmp(old, g->members, old_n * sizeof *old) != 0);
  free(old);
  return g->known && changed;
}

/* ---- operations ----------------------------------------------------------
 */

static int op_before(const grp_op *a, uint64_t lamport, const uint8_t *id) {
  if (a->lamport != lamport)
    return a->lamport < lamport;
  return memcmp(a->id, id, 16) < 0;
}

/* Checks and keeps an operation.  Returns 1 new, 0 known already, or an
 * error (a bad one is LC_EAUTH / LC_EPROTO ...). */
static int op_take(lc__grp *e, const uint8_t *bytes, size_t len,
                   lc__group **out) {
  static uint8_t mem[LC_GROUP_MEMBERS_MAX][LC_KEY_BYTES];
  lc__gop_wire w;
  int rc = lc__gop_decode(&w, mem, bytes, len);
  if (rc < 0)
    return rc;
  if (lc__pk_check(w.author) < 0 ||
      lc__verify(w.author, bytes, w.signed_len, w.sig) != 0)
    return LC_EAUTH;
  if (w.kind == LC_GOP_CREATE) {
    /* the group's id is made from its creator's key: nobody else can
     * create the same group */
    uint8_t in[LC_KEY_BYTES + 16], id[LC_GROUP_ID_BYTES];
    memcpy(in, w.author, LC_KEY_BYTES);
    memcpy(in + LC_KEY_BYTES, w.nonce, 16);
    lc__hash(id, sizeof id, in, sizeof in);
    if (memcmp(id, w.group, LC_GROUP_ID_BYTES) != 0)
      return LC_EAUTH;
  }
  uint8_t oid[16];
  lc__hash(oid, sizeof oid, bytes, len);
  lc__group *g = group_add(e, w.group);
  if (!g)
    return LC_ELIMIT;
  *out = g;
  size_t pos = g->nops;
  while (pos > 0 && !op_before(&g->ops[pos - 1], w.lamport, oid))
    pos--;
  if (pos < g->nops && memcmp(g->ops[pos].id, oid, 16) == 0)
    return 0;
  if (g->nops >= LC_GROUP_OPS_MAX)
    return LC_ELIMIT;
  grp_op *v = realloc(g->ops, (g->nops + 1) * sizeof *v);
  if (!v)
    return LC_ENOMEM;
  g->ops = v;
  uint8_t *copy = malloc(len);
  if (!copy)
    return LC_ENOMEM;
  memcpy(copy, bytes, len);
  memmove(&g->ops[pos + 1], &g->ops[pos], (g->nops - pos) * sizeof *v);
  grp_op *op = &g->ops[pos];
  memcpy(op->id, oid, 16);
  op->lamport = w.lamport;
  op->kind = w.kind;
  memcpy(op->author, w.author, LC_KEY_BYTES);
  memcpy(op->target, w.target, LC_KEY_BYTES);
  op->bytes = copy;
  op->len = len;
  g->nops++;
  if (w.lamport > g->lamport)
    g->lamport = w.lamport;
  return 1;
}

int lc__grp_load_op(lc__grp *e, const uint8_t *op, size_t len) {
  lc__group *g = NULL;
  int rc = op_take(e, op, len, &g);
  if (rc == 1)
    group_fold(g);
  return rc < 0 ? rc : 0;
}

static void send_env(lc__grp *e, const uint8_t *peer, const lc__chat *c) {
  if (key_eq(peer, e->self->pk))
    return;
  size_t cap = (c->kind == LC_CHAT_GROUP_SYNC
                    ? 64 + LC_GROUP_MEMBERS_MAX * (LC_KEY_BYTES + 12)
                    : c->blob_len + 32);
  uint8_t *buf = malloc(cap);
  if (!buf)
    return;
  int len = lc__chat_encode(c, buf, cap);
  if (len > 0)
    e->io.send(e->io.user, peer, buf, (size_t)len);
  free(buf);
}

static void send_op(lc__grp *e, const uint8_t *peer, const grp_op *op,
                    uint64_t now_ms) {
  static lc__chat c;
  memset(&c, 0, offsetof(lc__chat, vec));
  c.kind = LC_CHAT_GROUP_OP;
  c.sent_ms = now_ms;
  c.blob = op->bytes;
  c.blob_len = op->len;
  send_env(e, peer, &c);
  e->st.ops_sent++;
}

static void send_all_ops(lc__grp *e, const lc__group *g, const uint8_t *peer,
                         uint64_t now_ms) {
  for (size_t i = 0; i < g->nops; i++)
    send_op(e, peer, &g->ops[i], now_ms);
}

static void send_sync(lc__grp *e, const lc__group *g, const uint8_t *peer,
                      uint64_t now_ms);

/* Takes an operation (ours or a peer's): keeps it, folds, reports, and
 * when it made us a member, asks the members for what we lack. */
static int op_apply(lc__grp *e, const uint8_t *bytes, size_t len,
                    uint64_t now_ms, const uint8_t *from, lc__group **out) {
  lc__group *g = NULL;
  int rc = op_take(e, bytes, len, &g);
  if (rc <= 0)
    return rc;
  if (out)
    *out = g;
  int was_member = member_find(g, e->self->pk) != NULL;
  if (e->io.op_put && e->io.op_put(e->io.user, g->id, bytes, len) < 0) {
    /* not kept: forget it, so that it is taken when it comes again */
    for (size_t i = 0; i < g->nops; i++) {
      if (g->ops[i].bytes && g->ops[i].len == len &&
          memcmp(g->ops[i].bytes, bytes, len) == 0) {
        free(g->ops[i].bytes);
        memmove(&g->ops[i], &g->ops[i + 1], (g->nops - i - 1) * sizeof *g->ops);
        g->nops--;
        break;
      }
    }
    return LC_ESTORE;
  }
  if (group_fold(g) && e->io.changed)
    e->io.changed(e->io.user, g);
  /* just joined: ask the member who told us for what we lack (the others
   * follow when we meet them; asking all of a big group at once would
   * have every member answer with everything) */
  if (!was_member && member_find(g, e->self->pk) && from)
    send_sync(e, g, from, now_ms);
  return 1;
}

/* Signs and applies one of our operations, then sends it to the members
 * (and to its target); a new member gets every operation. */
static int op_ours(lc__grp *e, lc__gop_wire *w, uint64_t now_ms) {
  memcpy(w->author, e->self->pk, LC_KEY_BYTES);
  w->sent_ms = now_ms;
  uint8_t *buf = malloc(LC_GROUP_BLOB_MAX);
  if (!buf)
    return LC_ENOMEM;
  size_t signed_len;
  int len = lc__gop_encode(w, buf, LC_GROUP_BLOB_MAX, &signed_len);
  if (len < 0) {
    free(buf);
    return len;
  }
  lc__sign(e->self, buf, signed_len, buf + len - 64);
  lc__group *g = NULL;
  int rc = op_apply(e, buf, (size_t)len, now_ms, NULL, &g);
  if (rc == 1) {
    grp_op op = {.bytes = buf, .len = (size_t)len};
    for (size_t i = 0; i < g->nmembers; i++) {
      if (w->kind == LC_GOP_ADD && key_eq(g->members[i].key, w->target))
        send_all_ops(e, g, w->target, now_ms);
      else
        send_op(e, g->members[i].key, &op, now_ms);
    }
    if (w->kind == LC_GOP_REMOVE && !member_find(g, w->target))
      send_op(e, w->target, &op, now_ms); /* the removed learns it */
  }
  free(buf);
  return rc < 0 ? rc : 0;
}

static void grp_random(lc__grp *e, void *buf, size_t len) {
  if (e->io.random)
    e->io.random(e->io.user, buf, len);
  else
    lc__crypto_random(buf, len);
}

int lc__grp_create(lc__grp *e, const char *name,
                   const uint8_t (*members)[LC_KEY_BYTES], size_t n,
                   uint64_t now_ms, uint8_t id[LC_GROUP_ID_BYTES]) {
  if (!name || n + 1 > LC_GROUP_MEMBERS_MAX)
    return LC_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (key_eq(members[i], e->self->pk) || lc__pk_check(members[i]) < 0)
      return LC_EINVAL;
  lc__gop_wire w;
  memset(&w, 0, sizeof w);
  w.kind = LC_GOP_CREATE;
  w.lamport = 1;
  w.name = name;
  w.name_len = strlen(name);
  w.nmembers = n;
  w.members = n ? members[0] : NULL;
  grp_random(e, w.nonce, sizeof w.nonce);
  uint8_t in[LC_KEY_BYTES + 16];
  memcpy(in, e->self->pk, LC_KEY_BYTES);
  memcpy(in + LC_KEY_BYTES, w.nonce, 16);
  lc__hash(w.group, LC_GROUP_ID_BYTES, in, sizeof in);
  int rc = op_ours(e, &w, now_ms);
  if (rc == 0 && id)
    memcpy(id, w.group, LC_GROUP_ID_BYTES);
  return rc;
}

/* A group we are a member of, or an error. */
static int our_group(lc__grp *e, const uint8_t *id, lc__group **out) {
  lc__group *g = group_get(e, id);
  if (!g || !g->known)
    return LC_ENOPEER;
  if (!member_find(g, e->self->pk))
    return LC_ESTATE;
  *out = g;
  return 0;
}

int lc__grp_add(lc__grp *e, const uint8_t *group, const uint8_t *member,
                uint64_t now_ms) {
  lc__group *g;
  int rc = our_group(e, group, &g);
  if (rc < 0)
    return rc;
  if (lc__pk_check(member) < 0)
    return LC_EINVAL;
  if (member_find(g, member))
    return LC_ESTATE;
  if (g->nmembers >= LC_GROUP_MEMBERS_MAX)
    return LC_ELIMIT;
  lc__gop_wire w;
  memset(&w, 0, sizeof w);
  memcpy(w.group, group, LC_GROUP_ID_BYTES);
  w.kind = LC_GOP_ADD;
  w.lamport = g->lamport + 1;
  memcpy(w.target, member, LC_KEY_BYTES);
  return op_ours(e, &w, now_ms);
}

int lc__grp_remove(lc__grp *e, const uint8_t *group, const uint8_t *member,
                   uint64_t now_ms) {
  lc__group *g;
  int rc = our_group(e, group, &g);
  if (rc < 0)
    return rc;
  if (!member_find(g, member))
    return LC_ESTATE;
  if (!key_eq(member, e->self->pk) && !member_find(g, e->self->pk)->owner)
    return LC_ESTATE; /* only owners remove others */
  lc__gop_wire w;
  memset(&w, 0, sizeof w);
  memcpy(w.group, group, LC_GROUP_ID_BYTES);
  w.kind = LC_GOP_REMOVE;
  w.lamport = g->lamport + 1;
  memcpy(w.target, member, LC_KEY_BYTES);
  return op_ours(e, &w, now_ms);
}

int lc__grp_rename(lc__grp *e, const uint8_t *group, const char *name,
                   uint64_t now_ms) {
  lc__group *g;
  int rc = our_group(e, group, &g);
  if (rc < 0)
    return rc;
  if (!name)
    return LC_EINVAL;
  lc__gop_wire w;
  memset(&w, 0, sizeof w);
  memcpy(w.group, group, LC_GROUP_ID_BYTES);
  w.kind = LC_GOP_RENAME;
  w.lamport = g->lamport + 1;
  w.name = name;
  w.name_len = strlen(name);
  return op_ours(e, &w, now_ms);
}

/* ---- messages ----------------------------------------------------------- */

void lc__grp_msg_id(const uint8_t *group, const uint8_t *author, uint64_t seq,
                    uint8_t out[LC_MSGID_BYTES]) {
  uint8_t in[LC_GROUP_ID_BYTES + LC_KEY_BYTES + 8];
  memcpy(in, group, LC_GROUP_ID_BYTES);
  memcpy(in + LC_GROUP_ID_BYTES, author, LC_KEY_BYTES);
  for (int i = 0; i < 8; i++)
    in[LC_GROUP_ID_BYTES + LC_KEY_BYTES + i] = (uint8_t)(seq >> (56 - 8 * i));
  lc__hash(out, LC_MSGID_BYTES, in, sizeof in);
}

static grp_vec *vec_get(lc__group *g, const uint8_t *author, int create) {
  for (size_t i = 0; i < g->nvec; i++)
    if (key_eq(g->vec[i].author, author))
      return &g->vec[i];
  if (!create)
    return NULL;
  grp_vec *v = realloc(g->vec, (g->nvec + 1) * sizeof *v);
  if (!v)
    return NULL;
  g->vec = v;
  grp_vec *x = &g->vec[g->nvec++];
  memset(x, 0, sizeof *x);
  memcpy(x->author, author, LC_KEY_BYTES);
  return x;
}

/* Notes that seq of author is held. */
static void vec_add(lc__group *g, const uint8_t *author, uint64_t seq) {
  grp_vec *v = vec_get(g, author, 1);
  if (!v || seq <= v->contig)
    return;
  if (seq == v->contig + 1) {
    v->contig = seq;
    size_t k = 0;
    while (k < v->nabove && v->above[k] <= v->contig + 1) {
      if (v->above[k] == v->contig + 1)
        v->contig++;
      k++;
    }
    if (k) {
      memmove(v->above, v->above + k, (v->nabove - k) * sizeof *v->above);
      v->nabove -= k;
    }
    return;
  }
  size_t pos = 0;
  while (pos < v->nabove && v->above[pos] < seq)
    pos++;
  if (pos < v->nabove && v->above[pos] == seq)
    return;
  uint64_t *a = realloc(v->above, (v->nabove + 1) * sizeof *a);
  if (!a)
    return; /* forgotten: SYNC brings it again */
  v->above = a;
  memmove(a + pos + 1, a + pos, (v->nabove - pos) * sizeof *a);
  a[pos] = seq;
  v->nabove++;
}

static uint64_t vec_top(const grp_vec *v) {
  return v->nabove ? v->above[v->nabove - 1] : v->contig;
}

uint64_t lc__group_have(const lc__group *g, const uint8_t *author) {
  for (size_t i = 0; i < g->nvec; i++)
    if (key_eq(g->vec[i].author, author))
      return g->vec[i].contig;
  return 0;
}

void lc__grp_load_msg(lc__grp *e, const uint8_t *group, const uint8_t *author,
                      uint64_t seq, uint64_t lamport) {
  lc__group *g = group_add(e, group);
  if (!g)
    return;
  vec_add(g, author, seq);
  if (lamport > g->lamport)
    g->lamport = lamport;
}

int lc__grp_send(lc__grp *e, const uint8_t *group, const char *text, size_t len,
                 uint64_t now_ms, uint8_t msg_id[LC_MSGID_BYTES]) {
  lc__group *g;
  int rc = our_group(e, group, &g);
  if (rc < 0)
    return rc;
  grp_vec *v = vec_get(g, e->self->pk, 1);
  if (!v)
    return LC_ENOMEM;
  lc__gmsg_wire m;
  memset(&m, 0, sizeof m);
  memcpy(m.group, group, LC_GROUP_ID_BYTES);
  memcpy(m.author, e->self->pk, LC_KEY_BYTES);
  m.seq = vec_top(v) + 1;
  m.lamport = g->lamport + 1;
  m.sent_ms = now_ms;
  m.text = text;
  m.text_len = len;
  size_t cap = len + 256;
  uint8_t *buf = malloc(cap);
  if (!buf)
    return LC_ENOMEM;
  size_t signed_len;
  int n = lc__gmsg_encode(&m, buf, cap, &signed_len);
  if (n < 0) {
    free(buf);
    return n;
  }
  lc__sign(e->self, buf, signed_len, buf + n - 64);
  uint8_t id[LC_MSGID_BYTES];
  lc__grp_msg_id(group, m.author, m.seq, id);
  rc = e->io.msg_put(e->io.user, &m, id, buf, (size_t)n);
  if (rc < 0) {
    free(buf);
    return rc;
  }
  vec_add(g, m.author, m.seq);
  g->lamport = m.lamport;
  static lc__chat c;
  memset(&c, 0, offsetof(lc__chat, vec));
  c.kind = LC_CHAT_GROUP_MSG;
  c.sent_ms = now_ms;
  c.blob = buf;
  c.blob_len = (size_t)n;
  for (size_t i = 0; i < g->nmembers; i++) {
    send_env(e, g->members[i].key, &c);
    e->st.msgs_sent++;
  }
  free(buf);
  if (msg_id)
    memcpy(msg_id, id, LC_MSGID_BYTES);
  return 0;
}

static int msg_take(lc__grp *e, const uint8_t *blob, size_t len) {
  lc__gmsg_wire m;
  if (lc__gmsg_decode(&m, blob, len) < 0 || lc__pk_check(m.author) < 0 ||
      lc__verify(m.author, blob, m.signed_len, m.sig) != 0) {
    e->st.msgs_bad++;
    return 0;
  }
  lc__group *g = group_get(e, m.group);
  /* a group we do not know yet, or an author that never was a member:
   * dropped (a SYNC brings it again once the operations are here) */
  if (!g || !g->known || !ever_has(g, m.author)) {
    e->st.msgs_bad++;
    return 0;
  }
  uint8_t id[LC_MSGID_BYTES];
  lc__grp_msg_id(m.group, m.author, m.seq, id);
  int rc = e->io.msg_put(e->io.user, &m, id, blob, len);
  if (rc < 0)
    return rc;
  if (rc == 0)
    e->st.msgs_dup++;
  e->st.msgs_in++;
  vec_add(g, m.author, m.seq);
  if (m.lamport > g->lamport)
    g->lamport = m.lamport;
  return 0;
}

/* ---- SYNC ----------------------------------------------------------------
 */

static void send_sync(lc__grp *e, const lc__group *g, const uint8_t *peer,
                      uint64_t now_ms) {
  static lc__chat c;
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_GROUP_SYNC;
  c.sent_ms = now_ms;
  memcpy(c.group, g->id, LC_GROUP_ID_BYTES);
  c.nops = g->nops;
  memcpy(c.ops_hash, g->ops_hash, 16);
  for (size_t i = 0; i < g->nvec && c.nvec < LC_GROUP_MEMBERS_MAX; i++) {
    memcpy(c.vec[c.nvec].author, g->vec[i].author, LC_KEY_BYTES);
    c.vec[c.nvec++].seq = g->vec[i].contig;
  }
  send_env(e, peer, &c);
}

typedef struct {
  lc__grp *e;
  const uint8_t *peer;
  uint64_t now_ms;
} sync_ctx;

static void sync_each(void *ctx, const uint8_t *blob, size_t len) {
  sync_ctx *s = ctx;
  static lc__chat c;
  memset(&c, 0, offsetof(lc__chat, vec));
  c.kind = LC_CHAT_GROUP_MSG;
  c.sent_ms = s->now_ms;
  c.blob = blob;
  c.blob_len = len;
  send_env(s->e, s->peer, &c);
  s->e->st.msgs_sent++;
}

#define SYNC_MSGS_MAX 4096 /* per author and SYNC; the next SYNC goes on */

static void sync_recv(lc__grp *e, const uint8_t *peer, const lc__chat *c) {
  e->st.syncs_in++;
  lc__group *g = group_get(e, c->group);
  if (!g || !g->known) {
    /* a group we do not know (we were added while away): answer with an
     * empty SYNC, so that the sender sends us its operations */
    if (c->nops > 0) {
      static lc__chat r;
      memset(&r, 0, offsetof(lc__chat, vec));
      r.kind = LC_CHAT_GROUP_SYNC;
      r.sent_ms = c->sent_ms;
      memcpy(r.group, c->group, LC_GROUP_ID_BYTES);
      r.nvec = 0;
      send_env(e, peer, &r);
    }
    return;
  }
  /* whoever knows the group's id (a member told it) may learn its
   * operations: one added by an operation that lost a race learns so */
  uint64_t now_ms = c->sent_ms;
  /* operations only to a peer that has fewer, or as many but others (it
   * sends us its own when it gets our SYNC): when the two differ both ways
   * each sends the other its set once, not both at every SYNC */
  if (c->nops < g->nops ||
      (c->nops == g->nops && memcmp(c->ops_hash, g->ops_hash, 16) != 0))
    send_all_ops(e, g, peer, now_ms);
  if (!member_find(g, peer))
    return; /* a former member learns of the operations, no more */
  sync_ctx s = {e, peer, now_ms};
  for (size_t i = 0; i < g->nvec; i++) {
    uint64_t theirs = 0;
    for (size_t k = 0; k < c->nvec; k++)
      if (key_eq(c->vec[k].author, g->vec[i].author))
        theirs = c->vec[k].seq;
    if (vec_top(&g->vec[i]) > theirs)
      e->io.msgs_after(e->io.user, g->id, g->vec[i].author, theirs,
                       SYNC_MSGS_MAX, sync_each, &s);
  }
}

int lc__grp_recv(lc__grp *e, const uint8_t *peer, const lc__chat *c) {
  switch (c->kind) {
  case LC_CHAT_GROUP_OP: {
    e->st.ops_in++;
    int rc = op_apply(e, c->blob, c->blob_len, c->sent_ms, peer, NULL);
    if (rc == LC_ESTORE)
      return rc;
    if (rc < 0)
      e->st.ops_bad++;
    return 0;
  }
  case LC_CHAT_GROUP_MSG:
    return msg_take(e, c->blob, c->blob_len);
  case LC_CHAT_GROUP_SYNC:
    sync_recv(e, peer, c);
    return 0;
  }
  return 0;
}

void lc__grp_peer_up(lc__grp *e, const uint8_t *peer, uint64_t now_ms) {
  for (size_t i = 0; i < e->ngroups; i++) {
    lc__group *g = e->groups[i];
    /* former members too: they learn what happened since they left (the
     * operations, not the messages) */
    if (g->known && ever_has(g, peer) && ever_has(g, e->self->pk))
      send_sync(e, g, peer, now_ms);
  }
}

void lc__grp_stats_get(const lc__grp *e, lc__grp_stats *st) {
  *st = e->st;
}
