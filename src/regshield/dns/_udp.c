/*
 * The UDP answering loop of the embedded DNS server, and its response rate limiter.
 *
 * `Responder.run` reads the datagrams waiting on the server's socket in batches (recvmmsg),
 * decides each one's RRL verdict, answers from `answers` (a dict the Python server fills:
 * question key -> the response it built for that question) and sends those answers in
 * batches (sendmmsg). Whatever it cannot answer exactly as the Python server would (a question
 * not in `answers`, a query that is not a plain one, a response larger than the client's UDP
 * size, a slipped response) goes back to Python with its verdict, and the Python server
 * answers it and remembers the answer. Both sides read a query with the same rules
 * (regshield/dns/server.py, `_read_plain_query` and `_answer_key`), so a question reaches the
 * same response whichever side answers it.
 *
 * A question `answers` does not hold may still be a name the zone does not have, in a zone
 * signed with NSEC3: a random-subdomain flood asks one such name after another. For those the
 * loop finds the proof itself (`Nsec3Denial`: the closest encloser among the zone's names, the
 * hash of the next closer name, the NSEC3 record that covers it) and puts the response together
 * from parts the Python server rendered: per closest encloser, the SOA, the encloser's NSEC3
 * and the NSEC3 covering its wildcard (a "frame", added when Python first answers a name under
 * that encloser), and per NSEC3 record, that record with its RRSIG. Anything the loop is not
 * sure of (a delegation above the name, a wildcard, a question naming a record's owner, no
 * frame yet) goes to Python, as other misses do. In a zone signed with NSEC (`NsecDenial`) the
 * loop finds the NSEC covering the name by a bisect in canonical order (RFC 4034 §6.1) and
 * answers from the sections Python rendered for that proof (the closest encloser and that
 * record), once Python has answered one name of it.
 *
 * `Limiter` is regshield/dns/rrl.py's token buckets (one per IPv4 /24 or IPv6 /56) in a table
 * of fixed size, checked by both the loop and Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64
#define MOST_LEFT 4096 /* datagrams handed back to Python by one run */
#define DATAGRAM 65536
#define NO_RESPONSE 16 /* the counter of queries that got no response */
#define PROBES 16

enum { SEND = 0, SLIP = 1, DROP = 2 };

/* -- the limiter -------------------------------------------------------------------------- */

typedef struct {
    uint8_t used;
    uint8_t key[8]; /* family tag, then the prefix */
    double tokens;
    double updated;
    uint64_t limited;
} Bucket;

typedef struct {
    int family;
    uint8_t network[16];
    int prefix;
} Network;

typedef struct {
    PyObject_HEAD
    double rate;
    double burst;
    long slip;
    Bucket *buckets;
    size_t mask;
    Network *allowed;
    Py_ssize_t allowed_count;
    unsigned long long answered, dropped, slipped;
} Limiter;

static int
in_network(const Network *network, int family, const uint8_t *address)
{
    if (network->family != family)
        return 0;
    int whole = network->prefix / 8, rest = network->prefix % 8;
    if (memcmp(network->network, address, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t keep = (uint8_t)(0xFF << (8 - rest));
    return (network->network[whole] & keep) == (address[whole] & keep);
}

/* The bucket key of an address: IPv4 /24 (an IPv4-mapped IPv6 address counts as IPv4), IPv6
   /56, as rrl.py's `_prefix`. */
static void
prefix_key(int family, const uint8_t *address, uint8_t key[8])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    memset(key, 0, 8);
    if (family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, address, 3);
    } else if (memcmp(address, mapped, 12) == 0) {
        key[0] = 4;
        memcpy(key + 1, address + 12, 3);
    } else {
        key[0] = 6;
        memcpy(key + 1, address, 7);
    }
}

static int
limiter_check(Limiter *self, int family, const uint8_t *address, double now)
{
    for (Py_ssize_t i = 0; i < self->allowed_count; i++) {
        if (in_network(&self->allowed[i], family, address)) {
            self->answered++;
            return SEND;
        }
    }
    uint8_t key[8];
    prefix_key(family, address, key);
    uint64_t hash = 1469598103934665603ULL;
    for (int i = 0; i < 8; i++)
        hash = (hash ^ key[i]) * 1099511628211ULL;
    Bucket *bucket = NULL, *oldest = NULL;
    for (size_t probe = 0; probe < PROBES; probe++) {
        Bucket *slot = &self->buckets[(hash + probe) & self->mask];
        if (slot->used && memcmp(slot->key, key, 8) == 0) {
            bucket = slot;
            break;
        }
        if (!slot->used) {
            if (oldest == NULL || oldest->used)
                oldest = slot;
        } else if (oldest == NULL || (oldest->used && slot->updated < oldest->updated)) {
            oldest = slot;
        }
    }
    if (bucket == NULL) {
        /* A new prefix takes a free slot, else the one idle the longest of its probes: an idle
           bucket refills to a full one, so forgetting it changes nothing once it is full. */
        bucket = oldest;
        bucket->used = 1;
        memcpy(bucket->key, key, 8);
        bucket->tokens = self->burst;
        bucket->updated = now;
        bucket->limited = 0;
    } else {
        double elapsed = now - bucket->updated;
        double tokens = bucket->tokens + elapsed * self->rate;
        bucket->tokens = tokens < self->burst ? tokens : self->burst;
        bucket->updated = now;
    }
    if (bucket->tokens >= 1.0) {
        bucket->tokens -= 1.0;
        self->answered++;
        return SEND;
    }
    bucket->limited++;
    if (self->slip && bucket->limited % (uint64_t)self->slip == 0) {
        self->slipped++;
        return SLIP;
    }
    self->dropped++;
    return DROP;
}

static int
parse_address(PyObject *text, int *family, uint8_t address[16])
{
    const char *string = PyUnicode_AsUTF8(text);
    if (string == NULL)
        return -1;
    char plain[64];
    size_t length = strcspn(string, "%"); /* a zone index names no network */
    if (length >= sizeof plain) {
        PyErr_SetString(PyExc_ValueError, "not an IP address");
        return -1;
    }
    memcpy(plain, string, length);
    plain[length] = 0;
    memset(address, 0, 16);
    if (inet_pton(AF_INET, plain, address) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, plain, address) == 1) {
        *family = AF_INET6;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "not an IP address: %R", text);
    return -1;
}

static int
Limiter_init(Limiter *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"rate", "burst", "slip", "table_size", NULL};
    double rate, burst;
    long slip;
    Py_ssize_t table_size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ddln", names, &rate, &burst, &slip,
                                     &table_size))
        return -1;
    if (rate <= 0 || burst < 0 || slip < 0 || table_size < 1) {
        PyErr_SetString(PyExc_ValueError, "rate must be positive, burst, slip and table_size "
                                          "not negative");
        return -1;
    }
    size_t capacity = 64;
    while (capacity < (size_t)table_size * 2 && capacity < ((size_t)1 << 24))
        capacity <<= 1;
    PyMem_Free(self->buckets);
    self->buckets = PyMem_Calloc(capacity, sizeof(Bucket));
    if (self->buckets == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->mask = capacity - 1;
    self->rate = rate;
    self->burst = burst;
    self->slip = slip;
    return 0;
}

static void
Limiter_dealloc(Limiter *self)
{
    PyMem_Free(self->buckets);
    PyMem_Free(self->allowed);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Limiter_check(Limiter *self, PyObject *args)
{
    PyObject *text;
    double now;
    if (!PyArg_ParseTuple(args, "Ud", &text, &now))
        return NULL;
    int family;
    uint8_t address[16];
    if (parse_address(text, &family, address) < 0)
        return NULL;
    return PyLong_FromLong(limiter_check(self, family, address, now));
}

static PyObject *
Limiter_allow_only(Limiter *self, PyObject *networks)
{
    PyObject *sequence = PySequence_Fast(networks, "expected a sequence of (address, prefix)");
    if (sequence == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
    Network *allowed = count ? PyMem_Calloc((size_t)count, sizeof(Network)) : NULL;
    if (count && allowed == NULL) {
        Py_DECREF(sequence);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *text;
        int prefix;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(sequence, i), "Ui", &text, &prefix)
            || parse_address(text, &allowed[i].family, allowed[i].network) < 0) {
            PyMem_Free(allowed);
            Py_DECREF(sequence);
            return NULL;
        }
        int bits = allowed[i].family == AF_INET ? 32 : 128;
        allowed[i].prefix = prefix < 0 ? 0 : (prefix > bits ? bits : prefix);
    }
    Py_DECREF(sequence);
    PyMem_Free(self->allowed);
    self->allowed = allowed;
    self->allowed_count = count;
    Py_RETURN_NONE;
}

static PyObject *
Limiter_counters(Limiter *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(KKK)", self->answered, self->dropped, self->slipped);
}

static PyMethodDef Limiter_methods[] = {
    {"check", (PyCFunction)Limiter_check, METH_VARARGS,
     "check(address, now) -> 0 (send), 1 (slip) or 2 (drop); counts the response."},
    {"allow_only", (PyCFunction)Limiter_allow_only, METH_O,
     "allow_only([(network address, prefix length), ...]): never limit these."},
    {"counters", (PyCFunction)Limiter_counters, METH_NOARGS,
     "counters() -> (answered, dropped, slipped)"},
    {NULL},
};

static PyTypeObject LimiterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "regshield.dns._udp.Limiter",
    .tp_basicsize = sizeof(Limiter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Token buckets per client prefix (IPv4 /24, IPv6 /56), as rrl.RateLimiter.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Limiter_init,
    .tp_dealloc = (destructor)Limiter_dealloc,
    .tp_methods = Limiter_methods,
};

/* -- SHA-1, for NSEC3 hashes (RFC 5155 §5; FIPS 180-4 §6.1) ---------------------------- */

typedef struct {
    uint32_t state[5];
    uint64_t length; /* octets hashed */
    uint8_t block[64];
    size_t used;
} Sha1;

static uint32_t
rotl(uint32_t value, int bits)
{
    return value << bits | value >> (32 - bits);
}

static void
sha1_block(Sha1 *sha, const uint8_t *block)
{
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)block[4 * t] << 24 | (uint32_t)block[4 * t + 1] << 16
               | (uint32_t)block[4 * t + 2] << 8 | block[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = sha->state[0], b = sha->state[1], c = sha->state[2], d = sha->state[3],
             e = sha->state[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t temp = rotl(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rotl(b, 30);
        b = a;
        a = temp;
    }
    sha->state[0] += a;
    sha->state[1] += b;
    sha->state[2] += c;
    sha->state[3] += d;
    sha->state[4] += e;
}

static void
sha1_start(Sha1 *sha)
{
    static const uint32_t initial[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476,
                                        0xc3d2e1f0};
    memcpy(sha->state, initial, sizeof initial);
    sha->length = 0;
    sha->used = 0;
}

static void
sha1_add(Sha1 *sha, const uint8_t *data, size_t size)
{
    sha->length += size;
    while (size) {
        size_t take = 64 - sha->used < size ? 64 - sha->used : size;
        memcpy(sha->block + sha->used, data, take);
        sha->used += take;
        data += take;
        size -= take;
        if (sha->used == 64) {
            sha1_block(sha, sha->block);
            sha->used = 0;
        }
    }
}

static void
sha1_end(Sha1 *sha, uint8_t digest[20])
{
    uint64_t bits = sha->length * 8;
    uint8_t pad = 0x80;
    sha1_add(sha, &pad, 1);
    pad = 0;
    while (sha->used != 56)
        sha1_add(sha, &pad, 1);
    uint8_t tail[8];
    for (int i = 0; i < 8; i++)
        tail[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_add(sha, tail, 8);
    for (int i = 0; i < 5; i++) {
        digest[4 * i] = (uint8_t)(sha->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(sha->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(sha->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)sha->state[i];
    }
}

/* The NSEC3 hash of a lowercased wire name (RFC 5155 §5). */
static void
nsec3_hash(const uint8_t *name, size_t size, const uint8_t *salt, size_t salt_size,
           long iterations, uint8_t digest[20])
{
    Sha1 sha;
    sha1_start(&sha);
    sha1_add(&sha, name, size);
    sha1_add(&sha, salt, salt_size);
    sha1_end(&sha, digest);
    for (long i = 0; i < iterations; i++) {
        sha1_start(&sha);
        sha1_add(&sha, digest, 20);
        sha1_add(&sha, salt, salt_size);
        sha1_end(&sha, digest);
    }
}

/* -- what an NSEC3 denial needs of one zone snapshot --------------------------------------- */

/* The fields every denial type starts with. */
typedef struct {
    PyObject_HEAD
    PyObject *existing;
    PyObject *cuts;
} Denial;

typedef struct {
    PyObject_HEAD
    PyObject *existing; /* set of the zone's names (empty non-terminals too), lowercased wire */
    PyObject *cuts;     /* set of its delegation points */
    PyObject *owners;   /* set of its NSEC3 owner names */
    PyObject *salt;     /* bytes */
    long iterations;
    PyObject *digests;  /* bytes: the NSEC3 hashes in order, 20 octets each */
    PyObject *covers;   /* list: the fragment of each NSEC3 record, in the same order */
    PyObject *frames;   /* dict: closest encloser -> frame (see `Nsec3Denial.__doc__`) */
    PyObject *opt;      /* bytes: the OPT record of the response */
} Nsec3Denial;

static int
Nsec3Denial_init(Nsec3Denial *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"existing", "cuts", "owners", "salt", "iterations", "digests",
                            "covers", "frames", "opt", NULL};
    PyObject *existing, *cuts, *owners, *salt, *digests, *covers, *frames, *opt;
    long iterations;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO!lO!O!O!O!", names, &existing, &cuts,
                                     &owners, &PyBytes_Type, &salt, &iterations, &PyBytes_Type,
                                     &digests, &PyList_Type, &covers, &PyDict_Type, &frames,
                                     &PyBytes_Type, &opt))
        return -1;
    if (!PyAnySet_Check(existing) || !PyAnySet_Check(cuts) || !PyAnySet_Check(owners)) {
        PyErr_SetString(PyExc_TypeError, "existing, cuts, owners: expected sets");
        return -1;
    }
    Py_ssize_t count = PyBytes_GET_SIZE(digests) / 20;
    if (PyBytes_GET_SIZE(digests) % 20 || count == 0 || PyList_GET_SIZE(covers) != count) {
        PyErr_SetString(PyExc_ValueError, "digests: expected 20 octets per NSEC3 record, as "
                                          "many as covers");
        return -1;
    }
    if (iterations < 0 || iterations > 2500) { /* RFC 5155 §10.3's largest */
        PyErr_SetString(PyExc_ValueError, "iterations: expected 0 to 2500");
        return -1;
    }
    PyObject **fields[] = {&self->existing, &self->cuts, &self->owners, &self->salt,
                           &self->digests, &self->covers, &self->frames, &self->opt};
    PyObject *values[] = {existing, cuts, owners, salt, digests, covers, frames, opt};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        Py_INCREF(values[i]);
        Py_XSETREF(*fields[i], values[i]);
    }
    self->iterations = iterations;
    return 0;
}

static void
Nsec3Denial_dealloc(Nsec3Denial *self)
{
    Py_XDECREF(self->existing);
    Py_XDECREF(self->cuts);
    Py_XDECREF(self->owners);
    Py_XDECREF(self->salt);
    Py_XDECREF(self->digests);
    Py_XDECREF(self->covers);
    Py_XDECREF(self->frames);
    Py_XDECREF(self->opt);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef Nsec3Denial_members[] = {
    {"frames", T_OBJECT_EX, offsetof(Nsec3Denial, frames), READONLY,
     "closest encloser (lowercased wire) -> frame"},
    {NULL},
};

static PyTypeObject Nsec3DenialType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "regshield.dns._udp.Nsec3Denial",
    .tp_basicsize = sizeof(Nsec3Denial),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What the loop needs to deny names in one NSEC3-signed zone snapshot.\n\n"
              "A fragment is (data, records, pointers): RRsets rendered on their own, how "
              "many records they hold, and where their compression pointers go, six octets "
              "each (offset in data; 0 for a target counted back from the end of the "
              "question's name, 1 for one counted from the fragment's start; that count). A "
              "frame is (SOA fragment, encloser's NSEC3 fragment, wildcard's covering NSEC3 "
              "fragment, names the SOA fragment compresses against).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Nsec3Denial_init,
    .tp_members = Nsec3Denial_members,
    .tp_dealloc = (destructor)Nsec3Denial_dealloc,
};

/* -- what an NSEC denial needs of one zone snapshot ---------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *existing; /* as Nsec3Denial's: the two share their first fields */
    PyObject *cuts;
    PyObject *owners; /* list: the NSEC owner names (lowercased wire) in canonical order */
    PyObject *proofs; /* dict: closest encloser + the covering NSEC's index (4 octets) -> proof */
} NsecDenial;

static int
NsecDenial_init(NsecDenial *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"existing", "cuts", "owners", "proofs", NULL};
    PyObject *existing, *cuts, *owners, *proofs;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO!O!", names, &existing, &cuts,
                                     &PyList_Type, &owners, &PyDict_Type, &proofs))
        return -1;
    if (!PyAnySet_Check(existing) || !PyAnySet_Check(cuts)) {
        PyErr_SetString(PyExc_TypeError, "existing, cuts: expected sets");
        return -1;
    }
    if (PyList_GET_SIZE(owners) == 0) {
        PyErr_SetString(PyExc_ValueError, "owners: expected the NSEC chain's owners");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(owners); i++) {
        if (!PyBytes_Check(PyList_GET_ITEM(owners, i))) {
            PyErr_SetString(PyExc_TypeError, "owners: expected wire names");
            return -1;
        }
    }
    PyObject **fields[] = {&self->existing, &self->cuts, &self->owners, &self->proofs};
    PyObject *values[] = {existing, cuts, owners, proofs};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        Py_INCREF(values[i]);
        Py_XSETREF(*fields[i], values[i]);
    }
    return 0;
}

static void
NsecDenial_dealloc(NsecDenial *self)
{
    Py_XDECREF(self->existing);
    Py_XDECREF(self->cuts);
    Py_XDECREF(self->owners);
    Py_XDECREF(self->proofs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef NsecDenial_members[] = {
    {"proofs", T_OBJECT_EX, offsetof(NsecDenial, proofs), READONLY,
     "closest encloser + covering NSEC's index (4 octets, big-endian) -> proof"},
    {NULL},
};

static PyTypeObject NsecDenialType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "regshield.dns._udp.NsecDenial",
    .tp_basicsize = sizeof(NsecDenial),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What the loop needs to deny names in one NSEC-signed zone snapshot.\n\n"
              "A proof is (head, truncated head, OPT record, template length, segments, "
              "pointers, names the sections compress against): the sections of an NXDOMAIN "
              "rendered after a question naming the closest encloser (the template), cut "
              "around their compression pointers, whose values (two octets each) move by as "
              "many octets as the question's name is longer than the template; the sections "
              "end with the OPT record.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)NsecDenial_init,
    .tp_dealloc = (destructor)NsecDenial_dealloc,
    .tp_members = NsecDenial_members,
};

/* -- the responder ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    int fd;
    PyObject *answers; /* dict: question key -> a response to that question */
    PyObject *zones;   /* dict: origin of each zone served -> its Nsec3Denial, or None */
    Limiter *limiter;  /* or NULL */
    uint8_t *received; /* BATCH datagrams of DATAGRAM bytes */
    uint8_t *sent;     /* BATCH responses of DATAGRAM bytes */
    struct sockaddr_storage peers[BATCH];
    struct iovec in_vectors[BATCH], out_vectors[BATCH];
    struct mmsghdr in_messages[BATCH], out_messages[BATCH];
    unsigned long long counts[NO_RESPONSE + 1];
    unsigned long long hits;   /* responses the loop sent itself */
    unsigned long long denied; /* of those, NSEC3 denials it put together */
    /* The peers of the datagrams the last run handed back, and which of them slipped. */
    struct sockaddr_storage *left_peers;
    socklen_t *left_lengths;
    Py_ssize_t left_count;
    PyObject *slipped; /* list of indexes into the last run's datagrams */
} Responder;

static int
Responder_init(Responder *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"fd", "answers", "limiter", "zones", NULL};
    int fd;
    PyObject *answers, *limiter = Py_None, *zones = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iO!|OO", names, &fd, &PyDict_Type, &answers,
                                     &limiter, &zones))
        return -1;
    if (zones != Py_None && !PyDict_Check(zones)) {
        PyErr_SetString(PyExc_TypeError, "zones: expected a dict or None");
        return -1;
    }
    if (limiter != Py_None && !PyObject_TypeCheck(limiter, &LimiterType)) {
        PyErr_SetString(PyExc_TypeError, "limiter: expected a Limiter or None");
        return -1;
    }
    if (self->received == NULL) {
        self->received = PyMem_Malloc((size_t)BATCH * DATAGRAM);
        self->sent = PyMem_Malloc((size_t)BATCH * DATAGRAM);
        self->left_peers = PyMem_Calloc(MOST_LEFT, sizeof(struct sockaddr_storage));
        self->left_lengths = PyMem_Calloc(MOST_LEFT, sizeof(socklen_t));
        self->slipped = PyList_New(0);
        if (self->received == NULL || self->sent == NULL || self->left_peers == NULL
            || self->left_lengths == NULL || self->slipped == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    self->fd = fd;
    Py_INCREF(answers);
    Py_XSETREF(self->answers, answers);
    if (zones == Py_None) {
        Py_CLEAR(self->zones);
    } else {
        Py_INCREF(zones);
        Py_XSETREF(self->zones, zones);
    }
    if (limiter == Py_None) {
        Py_CLEAR(self->limiter);
    } else {
        Py_INCREF(limiter);
        Py_XSETREF(self->limiter, (Limiter *)limiter);
    }
    return 0;
}

static void
Responder_dealloc(Responder *self)
{
    Py_XDECREF(self->answers);
    Py_XDECREF(self->zones);
    Py_XDECREF(self->limiter);
    PyMem_Free(self->received);
    PyMem_Free(self->sent);
    PyMem_Free(self->left_peers);
    PyMem_Free(self->left_lengths);
    Py_XDECREF(self->slipped);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* What the Python server's `_read_plain_query` reads from a query, or 0 when it would not
   take the query on its fast path. */
typedef struct {
    size_t name_end; /* past the name's root label */
    size_t end;      /* past the question */
    int edns, dnssec;
    unsigned payload;
} Question;

static int
read_plain_query(const uint8_t *wire, size_t size, Question *question)
{
    if (size < 17)
        return 0;
    unsigned qdcount = wire[4] << 8 | wire[5], ancount = wire[6] << 8 | wire[7];
    unsigned nscount = wire[8] << 8 | wire[9], arcount = wire[10] << 8 | wire[11];
    if (wire[2] & (0x80 | 0x78) || qdcount != 1 || ancount || nscount || arcount > 1)
        return 0;
    size_t position = 12;
    for (;;) {
        if (position >= size)
            return 0;
        uint8_t length = wire[position];
        if (length == 0) {
            position++;
            break;
        }
        if (length > 63)
            return 0;
        position += (size_t)length + 1;
    }
    if (position - 12 > 255 || position + 4 > size)
        return 0;
    unsigned qtype = wire[position] << 8 | wire[position + 1];
    unsigned qclass = wire[position + 2] << 8 | wire[position + 3];
    size_t end = position + 4;
    if (qclass != 1 || qtype == 251 || qtype == 252 || qtype >= 128)
        return 0;
    question->name_end = position;
    question->end = end;
    if (arcount == 0) {
        if (end != size)
            return 0;
        question->edns = question->dnssec = 0;
        question->payload = 512;
        return 1;
    }
    if (end + 11 > size)
        return 0;
    const uint8_t *opt = wire + end;
    unsigned rdtype = opt[1] << 8 | opt[2], payload = opt[3] << 8 | opt[4];
    unsigned version = opt[6], ednsflags = opt[7] << 8 | opt[8], rdlen = opt[9] << 8 | opt[10];
    if (opt[0] != 0 || rdtype != 41 || version != 0 || end + 11 + rdlen != size)
        return 0;
    question->edns = 1;
    question->dnssec = (ednsflags & 0x8000) != 0;
    question->payload = payload;
    return 1;
}

/* The answer key of `_answer_key`: the name folded to lowercase, type and class, EDNS and DO. */
static PyObject *
answer_key(const uint8_t *wire, const Question *question)
{
    size_t length = question->end - 12 + 2;
    PyObject *key = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)length);
    if (key == NULL)
        return NULL;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(key);
    for (size_t i = 12; i < question->name_end; i++) {
        uint8_t octet = wire[i];
        *out++ = (octet >= 'A' && octet <= 'Z') ? (uint8_t)(octet + 32) : octet;
    }
    memcpy(out, wire + question->name_end, 4);
    out += 4;
    out[0] = (uint8_t)question->edns;
    out[1] = (uint8_t)question->dnssec;
    return key;
}

static unsigned
udp_limit(const Question *question)
{
    if (!question->edns)
        return 512;
    unsigned payload = question->payload < 1232 ? question->payload : 1232;
    return payload > 512 ? payload : 512;
}

/* Whether `name[start:size]` is in `set`: 1, 0, or -1 with an exception. */
static int
holds(PyObject *set, const uint8_t *name, size_t start, size_t size)
{
    PyObject *suffix = PyBytes_FromStringAndSize((const char *)name + start,
                                                 (Py_ssize_t)(size - start));
    if (suffix == NULL)
        return -1;
    int found = PySet_Contains(set, suffix);
    Py_DECREF(suffix);
    return found;
}

/* A fragment's parts, checked: 1 when it is one, 0 when not. */
static int
read_fragment(PyObject *fragment, const uint8_t **data, Py_ssize_t *size, long *records,
              const uint8_t **pointers, Py_ssize_t *pointer_count)
{
    if (!PyTuple_Check(fragment) || PyTuple_GET_SIZE(fragment) != 3)
        return 0;
    PyObject *bytes = PyTuple_GET_ITEM(fragment, 0), *count = PyTuple_GET_ITEM(fragment, 1);
    PyObject *where = PyTuple_GET_ITEM(fragment, 2);
    if (!PyBytes_Check(bytes) || !PyLong_Check(count) || !PyBytes_Check(where)
        || PyBytes_GET_SIZE(where) % 6)
        return 0;
    *data = (const uint8_t *)PyBytes_AS_STRING(bytes);
    *size = PyBytes_GET_SIZE(bytes);
    *records = PyLong_AsLong(count);
    if (*records < 0 || *records > 0xFFFF) {
        PyErr_Clear();
        return 0;
    }
    *pointers = (const uint8_t *)PyBytes_AS_STRING(where);
    *pointer_count = PyBytes_GET_SIZE(where) / 6;
    for (Py_ssize_t i = 0; i < *pointer_count; i++) {
        const uint8_t *pointer = *pointers + 6 * i;
        if ((pointer[0] << 8 | pointer[1]) + 2 > *size || pointer[2] || pointer[3] > 1)
            return 0;
    }
    return 1;
}

/* Write a fragment at `out + at`, its pointers placed for a question name ending at
   `name_end`: 1, or 0 when a pointer would not fit (the response is then not sent). */
static int
place(uint8_t *out, size_t at, size_t name_end, const uint8_t *data, Py_ssize_t size,
      const uint8_t *pointers, Py_ssize_t pointer_count)
{
    memcpy(out + at, data, (size_t)size);
    for (Py_ssize_t i = 0; i < pointer_count; i++) {
        const uint8_t *pointer = pointers + 6 * i;
        size_t offset = (size_t)(pointer[0] << 8 | pointer[1]);
        size_t value = (size_t)(pointer[4] << 8 | pointer[5]);
        size_t target;
        if (pointer[3] == 0) {
            if (value > name_end)
                return 0;
            target = name_end - value;
        } else {
            target = at + value;
        }
        if (target >= 0x4000)
            return 0;
        out[at + offset] = (uint8_t)(0xC0 | target >> 8);
        out[at + offset + 1] = (uint8_t)target;
    }
    return 1;
}

#define MOST_LABELS 128

/* The labels of the wire name `name`, root excluded: their offsets, and how many. */
static int
labels_of(const uint8_t *name, size_t offsets[MOST_LABELS])
{
    int count = 0;
    for (size_t position = 0; name[position] && count < MOST_LABELS;
         position += (size_t)name[position] + 1)
        offsets[count++] = position;
    return count;
}

/* Compare two lowercased wire names in canonical DNS order (RFC 4034 §6.1): label by label
   from the root down, each label as octets, a shorter name first when it is a suffix. */
static int
canonical_compare(const uint8_t *first, const uint8_t *second)
{
    size_t ones[MOST_LABELS], others[MOST_LABELS];
    int one_count = labels_of(first, ones), other_count = labels_of(second, others);
    for (int i = 1; i <= one_count && i <= other_count; i++) {
        const uint8_t *one = first + ones[one_count - i], *other = second + others[other_count - i];
        size_t common = one[0] < other[0] ? one[0] : other[0];
        int order = memcmp(one + 1, other + 1, common);
        if (order)
            return order;
        if (one[0] != other[0])
            return one[0] < other[0] ? -1 : 1;
    }
    return one_count == other_count ? 0 : one_count < other_count ? -1 : 1;
}

/* Write the question's response from `proof`'s sections (see `NsecDenial.__doc__`): its
   length, or 0 when the proof is not one. */
static Py_ssize_t
from_proof(PyObject *proof, const uint8_t *wire, const Question *question, size_t name_size,
           uint8_t *out)
{
    if (!PyTuple_Check(proof) || PyTuple_GET_SIZE(proof) != 7)
        return 0;
    PyObject *head = PyTuple_GET_ITEM(proof, 0), *truncated = PyTuple_GET_ITEM(proof, 1);
    PyObject *opt = PyTuple_GET_ITEM(proof, 2), *template = PyTuple_GET_ITEM(proof, 3);
    PyObject *segments = PyTuple_GET_ITEM(proof, 4), *pointers = PyTuple_GET_ITEM(proof, 5);
    if (!PyBytes_Check(head) || PyBytes_GET_SIZE(head) != 10 || !PyBytes_Check(truncated)
        || PyBytes_GET_SIZE(truncated) != 10 || !PyBytes_Check(opt) || !PyLong_Check(template)
        || !PyTuple_Check(segments) || !PyBytes_Check(pointers)
        || PyBytes_GET_SIZE(pointers) % 2
        || PyTuple_GET_SIZE(segments) != PyBytes_GET_SIZE(pointers) / 2 + 1)
        return 0;
    long template_size = PyLong_AsLong(template);
    if (template_size < 1 || (size_t)template_size > name_size) {
        PyErr_Clear();
        return 0;
    }
    size_t delta = name_size - (size_t)template_size;
    Py_ssize_t pointer_count = PyBytes_GET_SIZE(pointers) / 2;
    const uint8_t *values = (const uint8_t *)PyBytes_AS_STRING(pointers);
    size_t sections = (size_t)pointer_count * 2;
    for (Py_ssize_t i = 0; i <= pointer_count; i++) {
        PyObject *segment = PyTuple_GET_ITEM(segments, i);
        if (!PyBytes_Check(segment))
            return 0;
        sections += (size_t)PyBytes_GET_SIZE(segment);
    }
    const uint8_t *flags = (const uint8_t *)PyBytes_AS_STRING(head);
    size_t at = question->end;
    if (at + sections > udp_limit(question)) {
        flags = (const uint8_t *)PyBytes_AS_STRING(truncated);
        memcpy(out + at, PyBytes_AS_STRING(opt), (size_t)PyBytes_GET_SIZE(opt));
        at += (size_t)PyBytes_GET_SIZE(opt);
    } else {
        for (Py_ssize_t i = 0; i <= pointer_count; i++) {
            PyObject *segment = PyTuple_GET_ITEM(segments, i);
            memcpy(out + at, PyBytes_AS_STRING(segment), (size_t)PyBytes_GET_SIZE(segment));
            at += (size_t)PyBytes_GET_SIZE(segment);
            if (i == pointer_count)
                break;
            size_t value = (size_t)(values[2 * i] << 8 | values[2 * i + 1]) + delta;
            if ((values[2 * i] & 0xC0) != 0xC0 || value > 0xFFFF)
                return 0;
            out[at++] = (uint8_t)(value >> 8);
            out[at++] = (uint8_t)value;
        }
    }
    out[0] = wire[0];
    out[1] = wire[1];
    out[2] = (uint8_t)(flags[0] | (wire[2] & 0x01)); /* RD */
    out[3] = (uint8_t)(flags[1] | (wire[3] & 0x10)); /* CD */
    memcpy(out + 4, flags + 2, 8);
    memcpy(out + 12, wire + 12, question->end - 12);
    return (Py_ssize_t)at;
}

/* The rest of `deny` in a zone signed with NSEC, from the closest encloser on. */
static Py_ssize_t
deny_nsec(NsecDenial *zone, const uint8_t *wire, const Question *question, const uint8_t *name,
          size_t size, const size_t *starts, int encloser_at, uint8_t *out)
{
    Py_ssize_t count = PyList_GET_SIZE(zone->owners), low = 0, high = count;
    while (low < high) { /* bisect_right */
        Py_ssize_t middle = low + (high - low) / 2;
        PyObject *owner = PyList_GET_ITEM(zone->owners, middle);
        if (!PyBytes_Check(owner))
            return 0;
        if (canonical_compare(name, (const uint8_t *)PyBytes_AS_STRING(owner)) < 0)
            high = middle;
        else
            low = middle + 1;
    }
    uint32_t covering = (uint32_t)((low + count - 1) % count);
    size_t encloser = starts[encloser_at];
    PyObject *key = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(size - encloser + 4));
    if (key == NULL)
        return -1;
    uint8_t *bytes = (uint8_t *)PyBytes_AS_STRING(key);
    memcpy(bytes, name + encloser, size - encloser);
    for (int i = 0; i < 4; i++)
        bytes[size - encloser + (size_t)i] = (uint8_t)(covering >> (24 - 8 * i));
    PyObject *proof = PyDict_GetItemWithError(zone->proofs, key); /* borrowed */
    Py_DECREF(key);
    if (proof == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(proof) || PyTuple_GET_SIZE(proof) != 7
        || !PyAnySet_Check(PyTuple_GET_ITEM(proof, 6)))
        return 0;
    /* A name in the question below the encloser that the sections also hold (`_assemble`). */
    int found;
    for (int at = 0; at < encloser_at; at++) {
        if ((found = holds(PyTuple_GET_ITEM(proof, 6), name, starts[at], size)) != 0)
            return found < 0 ? -1 : 0;
    }
    return from_proof(proof, wire, question, size, out);
}

static Py_ssize_t deny_nsec3(Nsec3Denial *zone, const uint8_t *wire, const Question *question,
                             const uint8_t *name, size_t size, const size_t *starts,
                             int encloser_at, uint8_t *out);

/* The NXDOMAIN response (with DO) to a plain query for a name a signed zone of `zones` does
   not have, written to `out`: its length, 0 when Python must answer (see the file's
   comment), or -1 with an exception. `key` is the query's answer key (the name lowercased). */
static Py_ssize_t
deny(PyObject *zones, const uint8_t *wire, const Question *question, PyObject *key,
     uint8_t *out)
{
    unsigned qtype = wire[question->name_end] << 8 | wire[question->name_end + 1];
    if (!question->dnssec || qtype == 43) /* DS: the zone may be the parent's */
        return 0;
    const uint8_t *name = (const uint8_t *)PyBytes_AS_STRING(key);
    size_t size = question->name_end - 12;
    size_t starts[MOST_LABELS];
    int labels = 0;
    for (size_t position = 0;;) {
        if (labels == MOST_LABELS)
            return 0;
        starts[labels++] = position;
        if (name[position] == 0)
            break;
        position += (size_t)name[position] + 1;
    }
    /* The zone: the closest origin, as `_zone_for_wire` finds it. */
    Denial *zone = NULL;
    int origin_at = 0;
    for (; origin_at < labels; origin_at++) {
        PyObject *suffix = PyBytes_FromStringAndSize((const char *)name + starts[origin_at],
                                                     (Py_ssize_t)(size - starts[origin_at]));
        if (suffix == NULL)
            return -1;
        PyObject *found = PyDict_GetItemWithError(zones, suffix); /* borrowed */
        Py_DECREF(suffix);
        if (found != NULL) {
            if (!PyObject_TypeCheck(found, &Nsec3DenialType)
                && !PyObject_TypeCheck(found, &NsecDenialType))
                return 0;
            zone = (Denial *)found;
            break;
        }
        if (PyErr_Occurred())
            return -1;
    }
    if (zone == NULL || origin_at == 0)
        return 0;
    int found;
    if (PySet_GET_SIZE(zone->cuts)) {
        for (int at = origin_at - 1; at >= 0; at--) {
            if ((found = holds(zone->cuts, name, starts[at], size)) != 0)
                return found < 0 ? -1 : 0; /* a referral */
        }
    }
    if ((found = holds(zone->existing, name, 0, size)) != 0)
        return found < 0 ? -1 : 0; /* data or NODATA */
    int encloser_at = 1;
    for (; encloser_at <= origin_at; encloser_at++) {
        if ((found = holds(zone->existing, name, starts[encloser_at], size)) < 0)
            return -1;
        if (found)
            break;
    }
    if (encloser_at > origin_at)
        return 0;
    size_t encloser = starts[encloser_at];
    uint8_t wildcard[2 + 255];
    wildcard[0] = 1;
    wildcard[1] = '*';
    memcpy(wildcard + 2, name + encloser, size - encloser);
    if ((found = holds(zone->existing, wildcard, 0, size - encloser + 2)) != 0)
        return found < 0 ? -1 : 0; /* a wildcard: NODATA or an expansion */
    if (PyObject_TypeCheck(zone, &NsecDenialType))
        return deny_nsec((NsecDenial *)zone, wire, question, name, size, starts, encloser_at,
                         out);
    return deny_nsec3((Nsec3Denial *)zone, wire, question, name, size, starts, encloser_at,
                      out);
}

/* The rest of `deny` in a zone signed with NSEC3, from the closest encloser on. */
static Py_ssize_t
deny_nsec3(Nsec3Denial *zone, const uint8_t *wire, const Question *question,
           const uint8_t *name, size_t size, const size_t *starts, int encloser_at,
           uint8_t *out)
{
    int found;
    size_t encloser = starts[encloser_at];
    PyObject *encloser_name = PyBytes_FromStringAndSize((const char *)name + encloser,
                                                        (Py_ssize_t)(size - encloser));
    if (encloser_name == NULL)
        return -1;
    PyObject *frame = PyDict_GetItemWithError(zone->frames, encloser_name); /* borrowed */
    Py_DECREF(encloser_name);
    if (frame == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(frame) || PyTuple_GET_SIZE(frame) != 4
        || !PyAnySet_Check(PyTuple_GET_ITEM(frame, 3)))
        return 0;
    /* A name in the question below the encloser that the sections also hold: a renderer
       would compress against it (see `_respond_composed`). */
    for (int at = 0; at < encloser_at; at++) {
        if ((found = holds(PyTuple_GET_ITEM(frame, 3), name, starts[at], size)) != 0
            || (found = holds(zone->owners, name, starts[at], size)) != 0)
            return found < 0 ? -1 : 0;
    }
    uint8_t digest[20];
    size_t next_closer = starts[encloser_at - 1];
    nsec3_hash(name + next_closer, size - next_closer,
               (const uint8_t *)PyBytes_AS_STRING(zone->salt),
               (size_t)PyBytes_GET_SIZE(zone->salt), zone->iterations, digest);
    const uint8_t *digests = (const uint8_t *)PyBytes_AS_STRING(zone->digests);
    Py_ssize_t count = PyBytes_GET_SIZE(zone->digests) / 20, low = 0, high = count;
    while (low < high) { /* bisect_left */
        Py_ssize_t middle = low + (high - low) / 2;
        if (memcmp(digests + 20 * middle, digest, 20) < 0)
            low = middle + 1;
        else
            high = middle;
    }
    /* Before the first one: the last one covers the name (the chain wraps). */
    PyObject *cover = PyList_GET_ITEM(zone->covers, (low + count - 1) % count);
    PyObject *parts[4] = {PyTuple_GET_ITEM(frame, 0), PyTuple_GET_ITEM(frame, 1), cover,
                          PyTuple_GET_ITEM(frame, 2)};
    if (cover == parts[1] || cover == parts[3])
        return 0; /* one record for two proofs: listed once (`_unique`) */
    const uint8_t *data[4], *pointers[4];
    Py_ssize_t sizes[4], pointer_counts[4];
    long records = 0;
    size_t total = question->end + (size_t)PyBytes_GET_SIZE(zone->opt);
    for (int i = 0; i < 4; i++) {
        long part_records;
        if (!read_fragment(parts[i], &data[i], &sizes[i], &part_records, &pointers[i],
                           &pointer_counts[i]))
            return 0;
        records += part_records;
        total += (size_t)sizes[i];
    }
    int truncated = total > udp_limit(question);
    out[0] = wire[0];
    out[1] = wire[1];
    out[2] = (uint8_t)(0x84 | (truncated ? 0x02 : 0) | (wire[2] & 0x01)); /* QR AA, RD */
    out[3] = (uint8_t)(3 | (wire[3] & 0x10));                              /* NXDOMAIN, CD */
    static const uint8_t one_question[] = {0, 1, 0, 0};
    memcpy(out + 4, one_question, 4);
    out[8] = truncated ? 0 : (uint8_t)(records >> 8);
    out[9] = truncated ? 0 : (uint8_t)records;
    out[10] = 0;
    out[11] = 1;
    memcpy(out + 12, wire + 12, question->end - 12);
    size_t at = question->end;
    if (!truncated) {
        for (int i = 0; i < 4; i++) {
            if (!place(out, at, question->name_end, data[i], sizes[i], pointers[i],
                       pointer_counts[i]))
                return 0;
            at += (size_t)sizes[i];
        }
    }
    memcpy(out + at, PyBytes_AS_STRING(zone->opt), (size_t)PyBytes_GET_SIZE(zone->opt));
    return (Py_ssize_t)(at + (size_t)PyBytes_GET_SIZE(zone->opt));
}

/* Hand a datagram back to Python, keeping its peer for `send`: the datagram alone, or with
   what `read_plain_query` read of it, (wire, key, end, qtype, edns, dnssec, payload). */
static int
leave(Responder *self, PyObject *left, const uint8_t *wire, size_t size,
      const Question *question, PyObject *key, const struct sockaddr_storage *peer,
      socklen_t peer_length, int verdict)
{
    Py_ssize_t index = PyList_GET_SIZE(left);
    PyObject *datagram;
    if (question == NULL) {
        datagram = PyBytes_FromStringAndSize((const char *)wire, (Py_ssize_t)size);
    } else {
        unsigned qtype = wire[question->name_end] << 8 | wire[question->name_end + 1];
        datagram = Py_BuildValue("(y#OnIOOI)", (const char *)wire, (Py_ssize_t)size, key,
                                 (Py_ssize_t)question->end, qtype,
                                 question->edns ? Py_True : Py_False,
                                 question->dnssec ? Py_True : Py_False, question->payload);
    }
    if (datagram == NULL)
        return -1;
    int failed = PyList_Append(left, datagram);
    Py_DECREF(datagram);
    if (failed)
        return -1;
    self->left_peers[index] = *peer;
    self->left_lengths[index] = peer_length;
    self->left_count = index + 1;
    if (verdict == SLIP) {
        PyObject *number = PyLong_FromSsize_t(index);
        if (number == NULL)
            return -1;
        failed = PyList_Append(self->slipped, number);
        Py_DECREF(number);
    }
    return failed;
}

static void
send_all(Responder *self, unsigned count)
{
    unsigned done = 0;
    while (done < count) {
        int sent = sendmmsg(self->fd, self->out_messages + done, count - done, MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            /* A full send buffer or an error for one peer: that response is dropped, as UDP
               may; the others still go. */
            done++;
            continue;
        }
        done += (unsigned)sent;
    }
}

/* Make `out` (`length` octets) the `slot`th response of this batch, to `peer`. */
static void
queue(Responder *self, unsigned slot, uint8_t *out, size_t length,
      const struct sockaddr_storage *peer, socklen_t peer_length)
{
    self->out_vectors[slot].iov_base = out;
    self->out_vectors[slot].iov_len = length;
    memset(&self->out_messages[slot].msg_hdr, 0, sizeof(struct msghdr));
    self->out_messages[slot].msg_hdr.msg_iov = &self->out_vectors[slot];
    self->out_messages[slot].msg_hdr.msg_iovlen = 1;
    self->out_messages[slot].msg_hdr.msg_name = (void *)peer;
    self->out_messages[slot].msg_hdr.msg_namelen = peer_length;
}

static PyObject *
Responder_run(Responder *self, PyObject *args)
{
    Py_ssize_t most;
    if (!PyArg_ParseTuple(args, "n", &most))
        return NULL;
    if (most > MOST_LEFT)
        most = MOST_LEFT;
    PyObject *left = PyList_New(0);
    if (left == NULL)
        return NULL;
    self->left_count = 0;
    if (PyList_SetSlice(self->slipped, 0, PyList_GET_SIZE(self->slipped), NULL) < 0) {
        Py_DECREF(left);
        return NULL;
    }
    Py_ssize_t read = 0;
    while (read < most) {
        unsigned want = (unsigned)(most - read < BATCH ? most - read : BATCH);
        for (unsigned i = 0; i < want; i++) {
            self->in_vectors[i].iov_base = self->received + (size_t)i * DATAGRAM;
            self->in_vectors[i].iov_len = DATAGRAM;
            memset(&self->in_messages[i].msg_hdr, 0, sizeof(struct msghdr));
            self->in_messages[i].msg_hdr.msg_iov = &self->in_vectors[i];
            self->in_messages[i].msg_hdr.msg_iovlen = 1;
            self->in_messages[i].msg_hdr.msg_name = &self->peers[i];
            self->in_messages[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
        }
        int count = recvmmsg(self->fd, self->in_messages, want, MSG_DONTWAIT, NULL);
        if (count < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            read++; /* an ICMP error for an earlier response: nothing to read */
            continue;
        }
        if (count == 0)
            break;
        read += count;
        struct timespec clock;
        clock_gettime(CLOCK_MONOTONIC, &clock);
        double now = (double)clock.tv_sec + (double)clock.tv_nsec * 1e-9;
        unsigned answered = 0;
        for (int i = 0; i < count; i++) {
            const uint8_t *wire = self->received + (size_t)i * DATAGRAM;
            size_t size = self->in_messages[i].msg_len;
            const struct sockaddr_storage *peer = &self->peers[i];
            int verdict = SEND;
            if (self->limiter != NULL) {
                if (size < 12 || wire[2] & 0x80) {
                    self->counts[NO_RESPONSE]++;
                    continue;
                }
                if (peer->ss_family == AF_INET) {
                    verdict = limiter_check(self->limiter, AF_INET,
                        (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr, now);
                } else {
                    verdict = limiter_check(self->limiter, AF_INET6,
                        (const uint8_t *)&((const struct sockaddr_in6 *)peer)->sin6_addr, now);
                }
                if (verdict == DROP) {
                    self->counts[NO_RESPONSE]++;
                    continue;
                }
            }
            Question question;
            PyObject *key = NULL, *response = NULL;
            int plain = read_plain_query(wire, size, &question);
            if (plain) {
                key = answer_key(wire, &question);
                if (key == NULL)
                    goto failed;
                if (verdict == SEND) {
                    response = PyDict_GetItemWithError(self->answers, key); /* borrowed */
                    if (response == NULL && PyErr_Occurred()) {
                        Py_DECREF(key);
                        goto failed;
                    }
                }
            }
            uint8_t *out = self->sent + (size_t)answered * DATAGRAM;
            if (plain && verdict == SEND && response == NULL && self->zones != NULL) {
                Py_ssize_t denied = deny(self->zones, wire, &question, key, out);
                if (denied < 0) {
                    Py_DECREF(key);
                    goto failed;
                }
                if (denied > 0) {
                    Py_DECREF(key);
                    self->counts[out[3] & 0x0F]++;
                    self->hits++;
                    self->denied++;
                    queue(self, answered++, out, (size_t)denied, peer,
                          self->in_messages[i].msg_hdr.msg_namelen);
                    continue;
                }
            }
            size_t length = response != NULL && PyBytes_Check(response)
                ? (size_t)PyBytes_GET_SIZE(response) : 0;
            if (response == NULL || length < question.end || length > udp_limit(&question)) {
                int failed = leave(self, left, wire, size, plain ? &question : NULL, key, peer,
                                   self->in_messages[i].msg_hdr.msg_namelen, verdict);
                Py_XDECREF(key);
                if (failed < 0)
                    goto failed;
                continue;
            }
            Py_DECREF(key);
            const uint8_t *cached = (const uint8_t *)PyBytes_AS_STRING(response);
            out[0] = wire[0];
            out[1] = wire[1];
            out[2] = (cached[2] & ~0x01) | (wire[2] & 0x01);
            out[3] = (cached[3] & ~0x10) | (wire[3] & 0x10);
            memcpy(out + 4, cached + 4, 8);
            memcpy(out + 12, wire + 12, question.end - 12);
            memcpy(out + question.end, cached + question.end, length - question.end);
            self->counts[cached[3] & 0x0F]++;
            self->hits++;
            queue(self, answered++, out, length, peer, self->in_messages[i].msg_hdr.msg_namelen);
        }
        if (answered)
            send_all(self, answered);
        continue;
    failed:
        Py_DECREF(left);
        return NULL;
    }
    return left;
}

/* Send `responses` (bytes, or None for no response) to the peers of the last run's
   datagrams, in their order, counting each by rcode. */
static PyObject *
Responder_send(Responder *self, PyObject *responses)
{
    if (!PyList_Check(responses) || PyList_GET_SIZE(responses) > self->left_count) {
        PyErr_SetString(PyExc_ValueError, "expected a list, at most one response for each "
                                          "datagram of the last run");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(responses);
    unsigned pending = 0;
    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *response = PyList_GET_ITEM(responses, index);
        if (response == Py_None) {
            self->counts[NO_RESPONSE]++;
            continue;
        }
        if (!PyBytes_Check(response) || PyBytes_GET_SIZE(response) < 4) {
            PyErr_SetString(PyExc_TypeError, "a response: expected bytes of a DNS message");
            return NULL;
        }
        self->counts[((const uint8_t *)PyBytes_AS_STRING(response))[3] & 0x0F]++;
        self->out_vectors[pending].iov_base = PyBytes_AS_STRING(response);
        self->out_vectors[pending].iov_len = (size_t)PyBytes_GET_SIZE(response);
        memset(&self->out_messages[pending].msg_hdr, 0, sizeof(struct msghdr));
        self->out_messages[pending].msg_hdr.msg_iov = &self->out_vectors[pending];
        self->out_messages[pending].msg_hdr.msg_iovlen = 1;
        self->out_messages[pending].msg_hdr.msg_name = &self->left_peers[index];
        self->out_messages[pending].msg_hdr.msg_namelen = self->left_lengths[index];
        if (++pending == BATCH) {
            send_all(self, pending);
            pending = 0;
        }
    }
    if (pending)
        send_all(self, pending);
    Py_RETURN_NONE;
}

static PyObject *
Responder_slipped(Responder *self, PyObject *Py_UNUSED(ignored))
{
    return PyList_GetSlice(self->slipped, 0, PyList_GET_SIZE(self->slipped));
}

static PyObject *
Responder_take_counts(Responder *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *counts = PyList_New(NO_RESPONSE + 3);
    if (counts == NULL)
        return NULL;
    for (int i = 0; i <= NO_RESPONSE + 2; i++) {
        unsigned long long *counter = i <= NO_RESPONSE ? &self->counts[i]
                                      : i == NO_RESPONSE + 1 ? &self->hits : &self->denied;
        PyObject *count = PyLong_FromUnsignedLongLong(*counter);
        if (count == NULL) {
            Py_DECREF(counts);
            return NULL;
        }
        PyList_SET_ITEM(counts, i, count);
        *counter = 0;
    }
    return counts;
}

static PyMethodDef Responder_methods[] = {
    {"run", (PyCFunction)Responder_run, METH_VARARGS,
     "run(most) -> [wire, ...]: answer up to `most` datagrams waiting on the socket; those "
     "not answered come back, for `send`."},
    {"send", (PyCFunction)Responder_send, METH_O,
     "send([response or None, ...]): the responses to the last run's datagrams, in order."},
    {"slipped", (PyCFunction)Responder_slipped, METH_NOARGS,
     "slipped() -> indexes of the last run's datagrams whose response RRL truncates."},
    {"take_counts", (PyCFunction)Responder_take_counts, METH_NOARGS,
     "take_counts() -> responses sent by rcode (index 16: none; index 17: those the loop "
     "sent itself; index 18: of those, NSEC3 denials it put together), since the last "
     "call."},
    {NULL},
};

static PyTypeObject ResponderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "regshield.dns._udp.Responder",
    .tp_basicsize = sizeof(Responder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Answers the datagrams of one UDP socket from a dict of responses.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Responder_init,
    .tp_dealloc = (destructor)Responder_dealloc,
    .tp_methods = Responder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "regshield.dns._udp",
    .m_doc = "The embedded DNS server's UDP answering loop and response rate limiter.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__udp(void)
{
    if (PyType_Ready(&LimiterType) < 0 || PyType_Ready(&ResponderType) < 0
        || PyType_Ready(&Nsec3DenialType) < 0 || PyType_Ready(&NsecDenialType) < 0)
        return NULL;
    PyObject *created = PyModule_Create(&module);
    if (created == NULL)
        return NULL;
    Py_INCREF(&LimiterType);
    Py_INCREF(&ResponderType);
    Py_INCREF(&Nsec3DenialType);
    Py_INCREF(&NsecDenialType);
    if (PyModule_AddObject(created, "Limiter", (PyObject *)&LimiterType) < 0
        || PyModule_AddObject(created, "Responder", (PyObject *)&ResponderType) < 0
        || PyModule_AddObject(created, "Nsec3Denial", (PyObject *)&Nsec3DenialType) < 0
        || PyModule_AddObject(created, "NsecDenial", (PyObject *)&NsecDenialType) < 0) {
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
