/*
 * kraken_proto._speedups: the L2 book's per-level update loop, compiled; and exact sums of
 * book tokens for the analytics (at the end of this file).
 *
 * apply_update(book, bids, asks) does what OrderBook._apply_update_py in book.py does,
 * step for step, on the same objects: the side's parallel ``keys``/``toks``/``frags``
 * lists, ``lo`` and ``text``. It reads the padded wire format itself (a price with its "."
 * at the book's scale, a quantity padded to its precision) where the Python loop consults
 * its memo of prices; the rare paths (any other token, a level lifted into the top 10
 * without a fragment, compaction, settling the deep levels after a message) call back into
 * the Python methods, so every rule lives in one place and this file only has the common
 * case (and a CRC-32 equal to zlib's). Like the Python loop, it lists at most
 * ``book._listed`` levels per side during a message and keeps the levels worse than all of
 * them in ``side.deep``, so that one message costs time linear in its length (the argument
 * is in book.py, above _apply_update_py).
 * The Python loop is the reference: the tests run both on the same inputs and compare
 * every field, and the package works without this module (it is optional at build time,
 * and KRAKEN_WS_PURE_PYTHON=1 skips it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define TOP 10       /* levels per side covered by the checksum */
#define TRUNCATED 64 /* truncated entries a side keeps before compacting */

static PyObject *s_price, *s_qty_fragment, *s_fragment, *s_compact, *s_settle_deep;

/*
 * The attributes read and written here. They are __slots__ (and msgspec fields), so
 * after the first look at a type each one is read straight from its slot in the object,
 * as the member descriptor would (a generic getattr costs more than a level's whole
 * update). Any other type, or an attribute that is not a plain object slot, takes the
 * generic path.
 */
enum {
    A_KEYS, A_TOKS, A_FRAGS, A_PRICES, A_LO, A_TEXT, A_SIGN, A_DEEP,  /* _Side */
    A_ASKS, A_BIDS, A_ASK_CRC, A_QDOT, A_PDOT, A_DEPTH, A_LISTED,     /* OrderBook */
    A_PRICE_TEXT, A_QTY_TEXT,                                  /* BookLevel */
    N_ATTRS
};
static const char *attr_names[N_ATTRS] = {
    "keys", "toks", "frags", "prices", "lo", "text", "sign", "deep",
    "_asks", "_bids", "_ask_crc", "_qdot", "_pdot", "_depth", "_listed",
    "price_text", "qty_text",
};
static PyObject *attr_str[N_ATTRS];
static PyTypeObject *attr_owner[N_ATTRS];  /* the type whose slot offset is known (a ref) */
static const void *attr_refused[N_ATTRS];  /* a type seen without such a slot (no ref) */
static Py_ssize_t attr_offset[N_ATTRS];
static char attr_writable[N_ATTRS];

#define SLOT(obj, attr) (*(PyObject **)((char *)(obj) + attr_offset[attr]))

/* Find the slot of ``attr`` in ``type`` if it is a plain object slot. */
static void
learn_slot(PyTypeObject *type, int attr)
{
    if (attr_owner[attr] != NULL || attr_refused[attr] == (const void *)type) {
        return;
    }
    attr_refused[attr] = type;
    if (type->tp_getattro != PyObject_GenericGetAttr) {
        return;
    }
    PyObject *descr = PyObject_GetAttr((PyObject *)type, attr_str[attr]);
    if (descr == NULL) {
        PyErr_Clear();
        return;
    }
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
        PyType_IsSubtype(type, PyDescr_TYPE(descr))) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX) {
            Py_INCREF(type);
            attr_owner[attr] = type;
            attr_offset[attr] = member->offset;
            attr_writable[attr] = !(member->flags & READONLY) &&
                                  type->tp_setattro == PyObject_GenericSetAttr;
        }
    }
    Py_DECREF(descr);
}

/* getattr(obj, name) as a new reference. */
static PyObject *
get_attr(PyObject *obj, int attr)
{
    PyTypeObject *type = Py_TYPE(obj);
    learn_slot(type, attr);
    if (type == attr_owner[attr]) {
        PyObject *value = SLOT(obj, attr);
        if (value != NULL) {
            Py_INCREF(value);
            return value;
        }
    }
    return PyObject_GetAttr(obj, attr_str[attr]);  /* also raises for an unset slot */
}

/* setattr(obj, name, value); value is not stolen. */
static int
set_attr(PyObject *obj, int attr, PyObject *value)
{
    PyTypeObject *type = Py_TYPE(obj);
    learn_slot(type, attr);
    if (type == attr_owner[attr] && attr_writable[attr]) {
        PyObject *old = SLOT(obj, attr);
        Py_INCREF(value);
        SLOT(obj, attr) = value;
        Py_XDECREF(old);
        return 0;
    }
    return PyObject_SetAttr(obj, attr_str[attr], value);
}

/* The buffer of a level's token (``level.price_text``/``qty_text``, a msgspec.Raw). */
static int
token_view(PyObject *level, int attr, Py_buffer *view)
{
    PyObject *raw = get_attr(level, attr);
    if (raw == NULL) {
        return -1;
    }
    int result = PyObject_GetBuffer(raw, view, PyBUF_SIMPLE);
    Py_DECREF(raw);
    return result;
}

static PyObject *
view_bytes(Py_buffer *view)
{
    return PyBytes_FromStringAndSize(view->buf, view->len);
}

static int
get_ssize(PyObject *obj, int name, Py_ssize_t *out)
{
    PyObject *value = get_attr(obj, name);
    if (value == NULL) {
        return -1;
    }
    *out = PyLong_AsSsize_t(value);
    Py_DECREF(value);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int
set_ssize(PyObject *obj, int name, Py_ssize_t value)
{
    PyObject *number = PyLong_FromSsize_t(value);
    if (number == NULL) {
        return -1;
    }
    int result = set_attr(obj, name, number);
    Py_DECREF(number);
    return result;
}

static PyObject *
get_list(PyObject *obj, int name)
{
    PyObject *value = get_attr(obj, name);
    if (value != NULL && !PyList_CheckExact(value)) {
        PyErr_Format(PyExc_TypeError, "side.%U must be a list", attr_str[name]);
        Py_CLEAR(value);
    }
    return value;
}

#define MAX_FAST_DIGITS 18 /* a price parsed here fits a long long */

/*
 * A price token written at the book's scale, as OrderBook._price reads it on its fast
 * path: digits with the "." at index n + pdot (pdot < 0). Sets *value to the digits as an
 * integer and writes them, leading zeros stripped (T(price)), to out; returns their
 * length (0 for a zero price), or -1 when the token needs OrderBook._price (no error set).
 * A sign is no digit, so a negative price always goes to OrderBook._price, which refuses it.
 */
static Py_ssize_t
parse_price(const char *p, Py_ssize_t n, long long pdot, long long *value, char *out)
{
    long long dot = (long long)n + pdot;
    if (pdot >= 0 || dot < 0 || p[dot] != '.' || n - 1 > MAX_FAST_DIGITS) {
        return -1;
    }
    long long v = 0;
    Py_ssize_t len = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (k == dot) {
            continue;
        }
        char c = p[k];
        if (c < '0' || c > '9') {
            return -1; /* a sign, exponent, quote or second "." */
        }
        v = v * 10 + (c - '0');
        if (len || c != '0') {
            out[len++] = c;
        }
    }
    *value = v;
    return len;
}

/*
 * The checksum fragment T(price) + T(qty) of a level on the fast path, or why not:
 * returns 1 and sets *frag (new reference, or NULL for a zero quantity that deletes),
 * returns 0 when the quantity needs OrderBook._qty_fragment (any sign: it refuses a
 * negative quantity, and -0 deletes), -1 on error.
 */
static int
fast_fragment(const char *pd, Py_ssize_t plen, const char *q, Py_ssize_t n, long long qdot,
              PyObject **frag)
{
    *frag = NULL;
    /* qty.replace(b".", b"").lstrip(b"0"): find the first digit that stays */
    Py_ssize_t start = 0;
    while (start < n && (q[start] == '0' || q[start] == '.')) {
        start++;
    }
    Py_ssize_t len = 0;
    for (Py_ssize_t k = start; k < n; k++) {
        if (q[k] == '.') {
            continue;
        }
        if (q[k] < '0' || q[k] > '9') {
            return 0;
        }
        len++;
    }
    if (len == 0) {
        return 1; /* all zeros: a delete */
    }
    /* qdot == 0: any padding; else qty[qdot:qdot + 1] == b"." as a Python slice */
    if (qdot != 0) {
        long long index = qdot > 0 ? qdot : qdot < -1 ? (long long)n + qdot : -1;
        if (index < 0 || index >= (long long)n || q[index] != '.') {
            return 0;
        }
    }
    *frag = PyBytes_FromStringAndSize(NULL, plen + len);
    if (*frag == NULL) {
        return -1;
    }
    char *out = PyBytes_AS_STRING(*frag);
    memcpy(out, pd, plen);
    out += plen;
    for (Py_ssize_t k = start; k < n; k++) {
        if (q[k] != '.') {
            *out++ = q[k];
        }
    }
    return 1;
}

/* A key as a machine integer when it is an int that fits (most prices at their scale). */
typedef struct {
    PyObject *object;
    long long value;
    int small;
} Key;

static Key
make_key(PyObject *object)
{
    Key key = {object, 0, 0};
    if (PyLong_CheckExact(object)) {
        int overflow;
        key.value = PyLong_AsLongLongAndOverflow(object, &overflow);
        key.small = !overflow;
    }
    return key;
}

/* item < key (op Py_LT) or item == key (Py_EQ), exactly as Python compares them. */
static int
compare(PyObject *item, Key *key, int op)
{
    if (key->small && PyLong_CheckExact(item)) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(item, &overflow);
        if (!overflow) {
            return op == Py_LT ? value < key->value : value == key->value;
        }
    }
    return PyObject_RichCompareBool(item, key->object, op);
}

/*
 * bisect_left(keys, key, lo), galloping from the end first: the best levels are at the end
 * of the list and most updates land near them, so this touches few (and recently used)
 * keys even in a depth-1000 book, where a plain bisection starts in the cold middle.
 */
static Py_ssize_t
bisect_left(PyObject *keys, Key *key, Py_ssize_t lo)
{
    Py_ssize_t size = PyList_GET_SIZE(keys);
    Py_ssize_t hi = size; /* the answer is in [lo, hi] */
    for (Py_ssize_t gap = 1; hi - gap >= lo; gap *= 2) {
        int less = compare(PyList_GET_ITEM(keys, hi - gap), key, Py_LT);
        if (less < 0) {
            return -1;
        }
        if (less) {
            lo = hi - gap + 1;
            break;
        }
        hi -= gap;
    }
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        int less = compare(PyList_GET_ITEM(keys, mid), key, Py_LT);
        if (less < 0) {
            return -1;
        }
        if (less) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    /* A comparison may run Python code; the list must not have changed under us. */
    if (PyList_GET_SIZE(keys) != size) {
        PyErr_SetString(PyExc_RuntimeError, "book keys changed during a search");
        return -1;
    }
    return lo;
}

/*
 * list.insert(where, item) with one memmove: PyList_Insert moves the tail a pointer at a
 * time, which dominated an update in the middle of a depth-1000 book.
 */
static int
list_insert(PyObject *list, Py_ssize_t where, PyObject *item)
{
    Py_ssize_t size = PyList_GET_SIZE(list);
    if (where >= size) {
        return PyList_Append(list, item);
    }
    /* Grow by one by appending the last item again, then shift [where, size - 1) up one. */
    PyObject *last = PyList_GET_ITEM(list, size - 1);
    if (PyList_Append(list, last) < 0) {
        return -1;
    }
    PyObject **items = ((PyListObject *)list)->ob_item;
    memmove(&items[where + 1], &items[where], (size_t)(size - 1 - where) * sizeof(PyObject *));
    Py_INCREF(item);
    items[where] = item;
    Py_DECREF(last); /* it was referenced twice (old and new last slot) and is now once */
    return 0;
}

/* side.text = b"".join(frags[max(lo, len(frags) - TOP):][::-1]) */
static int
set_text(PyObject *side, PyObject *frags, Py_ssize_t lo)
{
    Py_ssize_t end = PyList_GET_SIZE(frags);
    Py_ssize_t first = end - TOP > lo ? end - TOP : lo;
    Py_ssize_t total = 0;
    for (Py_ssize_t k = first; k < end; k++) {
        PyObject *frag = PyList_GET_ITEM(frags, k);
        if (!PyBytes_Check(frag)) {
            PyErr_SetString(PyExc_TypeError, "a checksum fragment is not bytes");
            return -1;
        }
        total += PyBytes_GET_SIZE(frag);
    }
    PyObject *text = PyBytes_FromStringAndSize(NULL, total);
    if (text == NULL) {
        return -1;
    }
    char *out = PyBytes_AS_STRING(text);
    for (Py_ssize_t k = end - 1; k >= first; k--) {
        PyObject *frag = PyList_GET_ITEM(frags, k);
        memcpy(out, PyBytes_AS_STRING(frag), PyBytes_GET_SIZE(frag));
        out += PyBytes_GET_SIZE(frag);
    }
    int result = set_attr(side, A_TEXT, text);
    Py_DECREF(text);
    return result;
}

/* frags[-TOP] = book._fragment(*toks[-TOP]): a level lifted into the top 10. */
static int
lift_fragment(PyObject *book, PyObject *toks, PyObject *frags)
{
    Py_ssize_t at = PyList_GET_SIZE(frags) - TOP;
    PyObject *pair = PyList_GET_ITEM(toks, at);
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "book tokens must be (price, qty) tuples");
        return -1;
    }
    PyObject *frag = PyObject_CallMethodObjArgs(
        book, s_fragment, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1), NULL);
    if (frag == NULL) {
        return -1;
    }
    if (at >= PyList_GET_SIZE(frags)) {
        Py_DECREF(frag);
        PyErr_SetString(PyExc_RuntimeError, "book fragments changed during an update");
        return -1;
    }
    PyList_SET_ITEM(frags, at, frag);  /* steals frag */
    return 0;
}

/*
 * One too many levels listed: the worst one (at lo) goes to side.deep, lo moves past it,
 * and the truncated entries are dropped once there are more than TRUNCATED.
 */
static int
evict_worst(PyObject *side, PyObject *deep, PyObject *keys, PyObject *toks, PyObject *frags,
            Py_ssize_t *lo)
{
    PyObject *tokens = PyList_GetItem(toks, *lo), *frag = PyList_GetItem(frags, *lo);
    if (tokens == NULL || frag == NULL) {
        return -1;
    }
    PyObject *value = PyTuple_Pack(2, tokens, frag);
    if (value == NULL) {
        return -1;
    }
    int failed = PyDict_SetItem(deep, PyList_GET_ITEM(keys, *lo), value);
    Py_DECREF(value);
    if (failed < 0 || set_ssize(side, A_LO, *lo + 1) < 0) {
        return -1;
    }
    *lo += 1;
    if (*lo > TRUNCATED) {
        PyObject *none = PyObject_CallMethodNoArgs(side, s_compact);
        if (none == NULL) {
            return -1;
        }
        Py_DECREF(none);
        *lo = 0;
    }
    return 0;
}

/* dirty |= book._settle_deep(side); *lo = side.lo */
static int
settle_deep(PyObject *book, PyObject *side, int *dirty, Py_ssize_t *lo)
{
    PyObject *entered = PyObject_CallMethodObjArgs(book, s_settle_deep, side, NULL);
    if (entered == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(entered);
    Py_DECREF(entered);
    if (truth < 0) {
        return -1;
    }
    *dirty |= truth;
    return get_ssize(side, A_LO, lo);
}

/*
 * book._settle_deep(side) while an error is set, as the Python loop's ``finally`` does: the
 * error stays, unless settling fails too (then that error, with the first as its context).
 */
static void
settle_deep_after_error(PyObject *book, PyObject *side)
{
    int dirty = 0;
    Py_ssize_t lo;
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *first = PyErr_GetRaisedException();
    if (settle_deep(book, side, &dirty, &lo) < 0) {
        PyObject *later = PyErr_GetRaisedException();
        PyException_SetContext(later, first); /* steals first */
        PyErr_SetRaisedException(later);
        return;
    }
    PyErr_SetRaisedException(first);
#else
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    if (settle_deep(book, side, &dirty, &lo) < 0) {
        PyObject *later_type, *later, *later_traceback;
        PyErr_Fetch(&later_type, &later, &later_traceback);
        PyErr_NormalizeException(&later_type, &later, &later_traceback);
        PyException_SetContext(later, value); /* steals value */
        Py_XDECREF(type);
        Py_XDECREF(traceback);
        PyErr_Restore(later_type, later, later_traceback);
        return;
    }
    PyErr_Restore(type, value, traceback);
#endif
}

/* One side of an update: 1 if its top 10 moved (side.text rebuilt), 0 if not, -1 on error. */
static int
apply_side(PyObject *book, PyObject *side, PyObject *sequence)
{
    PyObject *keys = NULL, *toks = NULL, *frags = NULL, *prices = NULL, *levels = NULL;
    PyObject *price = NULL, *qty = NULL, *entry = NULL, *frag = NULL, *pair = NULL;
    PyObject *key = NULL, *deep = NULL, *deep_entry = NULL;
    Py_buffer pview, qview;
    int have_pview = 0, have_qview = 0;
    char pdigits[MAX_FAST_DIGITS + 1];
    int result = -1;
    Py_ssize_t lo = 0, depth, listed, qdot_ssize, pdot_ssize, sign_ssize;
    int dirty = 0;

    if ((keys = get_list(side, A_KEYS)) == NULL || (toks = get_list(side, A_TOKS)) == NULL ||
        (frags = get_list(side, A_FRAGS)) == NULL) {
        goto done;
    }
    if ((prices = get_attr(side, A_PRICES)) == NULL) {
        goto done;
    }
    if (!PyDict_CheckExact(prices)) {
        PyErr_SetString(PyExc_TypeError, "side.prices must be a dict");
        goto done;
    }
    if ((deep = get_attr(side, A_DEEP)) == NULL) {
        goto done;
    }
    if (!PyDict_CheckExact(deep)) {
        PyErr_SetString(PyExc_TypeError, "side.deep must be a dict");
        Py_CLEAR(deep);
        goto done;
    }
    if (get_ssize(side, A_LO, &lo) < 0 || get_ssize(book, A_QDOT, &qdot_ssize) < 0 ||
        get_ssize(book, A_DEPTH, &depth) < 0 || get_ssize(book, A_PDOT, &pdot_ssize) < 0 ||
        get_ssize(side, A_SIGN, &sign_ssize) < 0 || get_ssize(book, A_LISTED, &listed) < 0) {
        goto done;
    }
    long long qdot = qdot_ssize, pdot = pdot_ssize, sign = sign_ssize;
    if ((levels = PySequence_Fast(sequence, "levels must be a sequence")) == NULL) {
        goto done;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(levels);
    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *level = PySequence_Fast_GET_ITEM(levels, index);
        if (token_view(level, A_PRICE_TEXT, &pview) < 0) {
            goto done;
        }
        have_pview = 1;
        if (token_view(level, A_QTY_TEXT, &qview) < 0) {
            goto done;
        }
        have_qview = 1;
        /* key, price_digits: parsed here, or known(price) or self._price(side, price) */
        const char *pd = pdigits;
        long long value;
        Py_ssize_t plen = parse_price(pview.buf, pview.len, pdot, &value, pdigits);
        if (plen > 0) { /* 0: a zero price, for self._price to refuse */
            if ((key = PyLong_FromLongLong(sign < 0 ? -value : value)) == NULL) {
                goto done;
            }
        }
        else {
            if ((price = view_bytes(&pview)) == NULL) {
                goto done;
            }
            entry = PyDict_GetItemWithError(prices, price);
            if (entry != NULL) {
                Py_INCREF(entry);
            }
            else if (PyErr_Occurred()) {
                goto done;
            }
            else {
                entry = PyObject_CallMethodObjArgs(book, s_price, side, price, NULL);
                /* A price with more decimals than the book rescales it: a new pdot. */
                if (entry == NULL || get_ssize(book, A_PDOT, &pdot_ssize) < 0) {
                    goto done;
                }
                pdot = pdot_ssize;
            }
            if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2 ||
                !PyBytes_CheckExact(PyTuple_GET_ITEM(entry, 1))) {
                PyErr_SetString(PyExc_TypeError, "a price entry must be (key, digits bytes)");
                goto done;
            }
            key = PyTuple_GET_ITEM(entry, 0);
            Py_INCREF(key);
            pd = PyBytes_AS_STRING(PyTuple_GET_ITEM(entry, 1));
            plen = PyBytes_GET_SIZE(PyTuple_GET_ITEM(entry, 1));
        }

        int fast = fast_fragment(pd, plen, qview.buf, qview.len, qdot, &frag);
        if (fast < 0) {
            goto done;
        }
        if (!fast) {
            PyObject *price_digits = PyBytes_FromStringAndSize(pd, plen);
            if (price_digits == NULL || (qty = view_bytes(&qview)) == NULL) {
                Py_XDECREF(price_digits);
                goto done;
            }
            frag = PyObject_CallMethodObjArgs(book, s_qty_fragment, price_digits, qty, NULL);
            Py_DECREF(price_digits);
            if (frag == NULL) {
                goto done;
            }
            if (frag == Py_None) {
                Py_CLEAR(frag);
            }
            else if (!PyBytes_Check(frag)) {
                PyErr_SetString(PyExc_TypeError, "_qty_fragment must return bytes or None");
                goto done;
            }
        }
        /* The level is kept: copies of its tokens, so the book holds no frame's buffer. */
        if (frag != NULL && ((price == NULL && (price = view_bytes(&pview)) == NULL) ||
                             (qty == NULL && (qty = view_bytes(&qview)) == NULL))) {
            goto done;
        }
        PyBuffer_Release(&pview);
        have_pview = 0;
        PyBuffer_Release(&qview);
        have_qview = 0;

        Key search = make_key(key);
        Py_ssize_t i = bisect_left(keys, &search, lo);
        if (i < 0) {
            goto done;
        }
        /* Levels better than one inserted at i; the level already at i has rank - 1. */
        Py_ssize_t rank = PyList_GET_SIZE(keys) - i;
        int found = 0;
        if (rank) {
            found = compare(PyList_GET_ITEM(keys, i), &search, Py_EQ);
            if (found < 0) {
                goto done;
            }
            if (PyList_GET_SIZE(keys) - i != rank) {
                PyErr_SetString(PyExc_RuntimeError, "book keys changed during an update");
                goto done;
            }
        }
        if (found) {
            if (frag != NULL) {
                if ((pair = PyTuple_Pack(2, price, qty)) == NULL) {
                    goto done;
                }
                if (PyList_SetItem(toks, i, pair) < 0) {  /* steals pair */
                    pair = NULL;
                    goto done;
                }
                pair = NULL;
                if (PyList_SetItem(frags, i, frag) < 0) {  /* steals frag */
                    frag = NULL;
                    goto done;
                }
                frag = NULL;
                if (rank <= TOP) {
                    dirty = 1;
                }
            }
            else {
                if (PyList_SetSlice(keys, i, i + 1, NULL) < 0 ||
                    PyList_SetSlice(toks, i, i + 1, NULL) < 0 ||
                    PyList_SetSlice(frags, i, i + 1, NULL) < 0) {
                    goto done;
                }
                if (rank <= TOP) {
                    dirty = 1;
                    Py_ssize_t live = PyList_GET_SIZE(frags) - lo;
                    if (live >= TOP) {
                        if (PyList_GET_SIZE(toks) != PyList_GET_SIZE(frags)) {
                            PyErr_SetString(PyExc_RuntimeError, "book lists out of step");
                            goto done;
                        }
                        PyObject *lifted = PyList_GET_ITEM(frags, PyList_GET_SIZE(frags) - TOP);
                        if (!PyBytes_Check(lifted)) {
                            PyErr_SetString(PyExc_TypeError, "a checksum fragment is not bytes");
                            goto done;
                        }
                        if (PyBytes_GET_SIZE(lifted) == 0 && lift_fragment(book, toks, frags) < 0) {
                            goto done;
                        }
                    }
                }
            }
        }
        else if (i == lo && (PyDict_GET_SIZE(deep) || rank >= listed)) {
            /* Worse than every listed level, which are too many or have deep ones below
               them: the level is deep, if it is anywhere. */
            if (frag == NULL) {
                int held = PyDict_Contains(deep, key);
                if (held < 0 || (held && PyDict_DelItem(deep, key) < 0)) {
                    goto done;
                }
            }
            else {
                if ((pair = PyTuple_Pack(2, price, qty)) == NULL ||
                    (deep_entry = PyTuple_Pack(2, pair, frag)) == NULL ||
                    PyDict_SetItem(deep, key, deep_entry) < 0) {
                    goto done;
                }
                Py_CLEAR(pair);
                Py_CLEAR(deep_entry);
            }
        }
        else if (frag != NULL) {
            if ((pair = PyTuple_Pack(2, price, qty)) == NULL) {
                goto done;
            }
            if (i == lo && lo) {
                /* The new worst level takes the last truncated slot instead of an insert. */
                lo -= 1;
                if (set_ssize(side, A_LO, lo) < 0) {
                    goto done;
                }
                Py_INCREF(key);
                if (PyList_SetItem(keys, lo, key) < 0) {
                    goto done;
                }
                int failed = PyList_SetItem(toks, lo, pair);
                pair = NULL;
                if (failed < 0) {
                    goto done;
                }
                failed = PyList_SetItem(frags, lo, frag);
                frag = NULL;
                if (failed < 0) {
                    goto done;
                }
            }
            else {
                if (list_insert(keys, i, key) < 0 || list_insert(toks, i, pair) < 0 ||
                    list_insert(frags, i, frag) < 0) {
                    goto done;
                }
                Py_CLEAR(pair);
                Py_CLEAR(frag);
                /* One too many listed: the worst goes deep. */
                if (PyList_GET_SIZE(keys) - lo > listed &&
                    evict_worst(side, deep, keys, toks, frags, &lo) < 0) {
                    goto done;
                }
            }
            if (rank < TOP) {
                dirty = 1;
            }
        }
        Py_CLEAR(price);
        Py_CLEAR(qty);
        Py_CLEAR(entry);
        Py_CLEAR(key);
        Py_CLEAR(frag);
    }

    if (PyDict_GET_SIZE(deep) && settle_deep(book, side, &dirty, &lo) < 0) {
        Py_CLEAR(deep); /* settled (or tried to): not again below */
        goto done;
    }
    Py_ssize_t excess = PyList_GET_SIZE(keys) - lo - depth;
    if (excess > 0) {
        lo += excess;
    }
    if (set_ssize(side, A_LO, lo) < 0) {
        goto done;
    }
    if (lo > TRUNCATED) {
        PyObject *none = PyObject_CallMethodNoArgs(side, s_compact);
        if (none == NULL) {
            goto done;
        }
        Py_DECREF(none);
        lo = 0;
    }
    if (dirty && set_text(side, frags, lo) < 0) {
        goto done;
    }
    result = dirty;

done:
    if (result < 0 && deep != NULL && PyDict_GET_SIZE(deep)) {
        /* The levels before the error are applied, the deep ones too (as in book.py). */
        settle_deep_after_error(book, side);
    }
    Py_XDECREF(deep);
    Py_XDECREF(deep_entry);
    Py_XDECREF(keys);
    Py_XDECREF(toks);
    Py_XDECREF(frags);
    Py_XDECREF(prices);
    Py_XDECREF(levels);
    Py_XDECREF(price);
    Py_XDECREF(qty);
    Py_XDECREF(entry);
    Py_XDECREF(frag);
    Py_XDECREF(pair);
    Py_XDECREF(key);
    if (have_pview) {
        PyBuffer_Release(&pview);
    }
    if (have_qview) {
        PyBuffer_Release(&qview);
    }
    return result;
}

/*
 * CRC-32 as zlib.crc32 computes it (reflected polynomial 0xEDB88320), eight bytes at a
 * time. Calling zlib.crc32 from here cost more than the rest of a one-level update: its
 * call overhead plus a byte-at-a-time loop over the ~150 bytes of a side's top 10.
 */
static uint32_t crc_table[8][256];

static void
crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = crc_table[0][n];
        for (int k = 1; k < 8; k++) {
            c = crc_table[0][c & 0xff] ^ (c >> 8);
            crc_table[k][n] = c;
        }
    }
}

static uint32_t
crc32_update(uint32_t crc, const unsigned char *p, size_t len)
{
    crc = ~crc;
    while (len >= 8) {
        uint32_t one = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                              (uint32_t)p[3] << 24);
        uint32_t two = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                       (uint32_t)p[7] << 24;
        crc = crc_table[7][one & 0xff] ^ crc_table[6][(one >> 8) & 0xff] ^
              crc_table[5][(one >> 16) & 0xff] ^ crc_table[4][one >> 24] ^
              crc_table[3][two & 0xff] ^ crc_table[2][(two >> 8) & 0xff] ^
              crc_table[1][(two >> 16) & 0xff] ^ crc_table[0][two >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}

/* zlib.crc32(text, start), with start NULL for 0. */
static PyObject *
checksum(PyObject *text, PyObject *start)
{
    if (!PyBytes_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "a side's checksum text is not bytes");
        return NULL;
    }
    unsigned long initial = 0;
    if (start != NULL) {
        initial = PyLong_AsUnsignedLong(start);
        if (initial == (unsigned long)-1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    uint32_t crc = crc32_update((uint32_t)initial, (const unsigned char *)PyBytes_AS_STRING(text),
                                (size_t)PyBytes_GET_SIZE(text));
    return PyLong_FromUnsignedLong(crc);
}

static PyObject *
apply_update(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "apply_update(book, bids, asks) takes 3 arguments");
        return NULL;
    }
    PyObject *book = args[0], *bids = args[1], *asks = args[2];
    PyObject *side = NULL, *text = NULL, *start = NULL, *result = NULL;
    Py_ssize_t size = PyObject_Length(asks);
    if (size < 0) {
        return NULL;
    }
    if (size) {
        if ((side = get_attr(book, A_ASKS)) == NULL) {
            goto done;
        }
        int dirty = apply_side(book, side, asks);
        if (dirty < 0) {
            goto done;
        }
        if (dirty) {
            if ((text = get_attr(side, A_TEXT)) == NULL ||
                (start = checksum(text, NULL)) == NULL || set_attr(book, A_ASK_CRC, start) < 0) {
                goto done;
            }
            Py_CLEAR(text);
            Py_CLEAR(start);
        }
        Py_CLEAR(side);
    }
    if ((side = get_attr(book, A_BIDS)) == NULL || (size = PyObject_Length(bids)) < 0 ||
        (size && apply_side(book, side, bids) < 0)) {
        goto done;
    }
    if ((text = get_attr(side, A_TEXT)) != NULL && (start = get_attr(book, A_ASK_CRC)) != NULL) {
        result = checksum(text, start);
    }
done:
    Py_XDECREF(side);
    Py_XDECREF(text);
    Py_XDECREF(start);
    return result;
}

/*
 * Exact sums of number tokens, for kraken_proto.analytics (which has the same functions in
 * Python: _sum_qty_py, _sum_notional_py and _micro_parts_py in analytics/depth.py).
 *
 * A book's levels are its ``(price, qty)`` token pairs (OrderBook.top_tokens). Almost every
 * token is a plain decimal, digits with an optional "." and digits, which is an integer at
 * a decimal scale: ``0.00005100`` is 5100 at scale 8. These functions add and multiply
 * such integers in machine words (unsigned 128 bits where the compiler has them, else 64)
 * and return Python ints with their scales, so that the caller makes one ``Decimal`` per
 * result instead of one per token. Like the Python functions, they return None for a token
 * that is not plain (an exponent, a sign, a quoted number...); unlike them, also for a
 * token of more than 19 significant digits and for a result (or an argument) that does
 * not fit the machine word. Otherwise both give the same ints. The caller then takes its
 * exact Decimal path, so None costs time, never exactness. Wrong argument types raise
 * TypeError (the Python functions expect the right ones).
 */
#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 wide_t;
#define WIDE_DIGITS 38 /* 10**38 < 2**128 */
#else
typedef uint64_t wide_t;
#define WIDE_DIGITS 19 /* 10**19 < 2**64 */
#endif
#define WIDE_MAX (~(wide_t)0)
#define TOKEN_DIGITS 19 /* significant digits of a token read here: below 2**64 */

static wide_t tens[WIDE_DIGITS + 1]; /* tens[k] == 10**k */

static void
tens_init(void)
{
    tens[0] = 1;
    for (int k = 1; k <= WIDE_DIGITS; k++) {
        tens[k] = tens[k - 1] * 10;
    }
}

/* *x *= 10**k; 0 if that overflows. */
static int
scale_up(wide_t *x, Py_ssize_t k)
{
    if (*x == 0 || k == 0) {
        return 1;
    }
    if (k > WIDE_DIGITS || *x > WIDE_MAX / tens[k]) {
        return 0;
    }
    *x *= tens[k];
    return 1;
}

/* *x += v; 0 if that overflows. */
static int
add_to(wide_t *x, wide_t v)
{
    if (v > WIDE_MAX - *x) {
        return 0;
    }
    *x += v;
    return 1;
}

/* *out = a * b; 0 if that overflows. */
static int
multiply(wide_t a, wide_t b, wide_t *out)
{
    if (a != 0 && b > WIDE_MAX / a) {
        return 0;
    }
    *out = a * b;
    return 1;
}

/* A plain decimal token as an integer and its count of decimals. */
typedef struct {
    wide_t value;
    Py_ssize_t decimals;
} Plain;

/*
 * Read a token: 1 if it is plain (digits, or digits "." digits) with at most TOKEN_DIGITS
 * significant digits, 0 if not, -1 (TypeError) if it is not bytes.
 */
static int
read_plain(PyObject *token, Plain *out)
{
    if (!PyBytes_Check(token)) {
        PyErr_Format(PyExc_TypeError, "a number token must be bytes, not %.100s",
                     Py_TYPE(token)->tp_name);
        return -1;
    }
    const char *p = PyBytes_AS_STRING(token);
    Py_ssize_t n = PyBytes_GET_SIZE(token);
    uint64_t value = 0;
    int significant = 0;
    Py_ssize_t dot = -1;
    for (Py_ssize_t k = 0; k < n; k++) {
        char c = p[k];
        if (c == '.' && dot < 0 && k > 0) {
            dot = k;
            continue;
        }
        if (c < '0' || c > '9') {
            return 0;
        }
        if (significant || c != '0') {
            if (++significant > TOKEN_DIGITS) {
                return 0;
            }
            value = value * 10 + (uint64_t)(c - '0');
        }
    }
    if (n == 0 || dot == n - 1) {
        return 0;
    }
    out->value = value;
    out->decimals = dot < 0 ? 0 : n - dot - 1;
    return 1;
}

/* The price and qty tokens of a level (borrowed), or -1 (TypeError). */
static int
level_tokens(PyObject *level, PyObject **price, PyObject **qty)
{
    if (!PyTuple_Check(level) || PyTuple_GET_SIZE(level) != 2) {
        PyErr_Format(PyExc_TypeError, "a level must be a (price, qty) tuple, not %.100s",
                     Py_TYPE(level)->tp_name);
        return -1;
    }
    *price = PyTuple_GET_ITEM(level, 0);
    *qty = PyTuple_GET_ITEM(level, 1);
    return 0;
}

/*
 * The levels to read: ``pairs`` (a list or tuple) and how many of them, ``min(n, len)``;
 * -1 with TypeError or ValueError. The items are borrowed: nothing below runs Python code.
 */
static int
levels_arg(PyObject *pairs, PyObject *n, PyObject ***items, Py_ssize_t *count)
{
    if (!PyList_Check(pairs) && !PyTuple_Check(pairs)) {
        PyErr_Format(PyExc_TypeError, "levels must be a list or tuple, not %.100s",
                     Py_TYPE(pairs)->tp_name);
        return -1;
    }
    if (!PyLong_Check(n)) {
        PyErr_Format(PyExc_TypeError, "n must be an int, not %.100s", Py_TYPE(n)->tp_name);
        return -1;
    }
    int overflow;
    long long wanted = PyLong_AsLongLongAndOverflow(n, &overflow);
    if (wanted == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow < 0 || (!overflow && wanted < 0)) {
        PyErr_SetString(PyExc_ValueError, "n must be >= 0");
        return -1;
    }
    Py_ssize_t size = PySequence_Fast_GET_SIZE(pairs);
    *count = overflow || wanted > (long long)size ? size : (Py_ssize_t)wanted;
    *items = PySequence_Fast_ITEMS(pairs);
    return 0;
}

/* A machine integer as a Python int. */
static PyObject *
wide_long(wide_t value)
{
#ifdef __SIZEOF_INT128__
    if (value >> 64) {
        PyObject *high = PyLong_FromUnsignedLongLong((unsigned long long)(value >> 64));
        PyObject *shift = PyLong_FromLong(64);
        PyObject *low = PyLong_FromUnsignedLongLong((unsigned long long)value);
        PyObject *shifted = NULL, *result = NULL;
        if (high != NULL && shift != NULL && low != NULL &&
            (shifted = PyNumber_Lshift(high, shift)) != NULL) {
            result = PyNumber_Or(shifted, low);
        }
        Py_XDECREF(high);
        Py_XDECREF(shift);
        Py_XDECREF(low);
        Py_XDECREF(shifted);
        return result;
    }
#endif
    return PyLong_FromUnsignedLongLong((unsigned long long)value);
}

/*
 * A tuple of Python ints: ``count`` values, each a machine integer (``wide``) or a signed
 * ssize (``small``), as ``kinds`` says: "w" or "s" per item.
 */
static PyObject *
int_tuple(const char *kinds, const wide_t *wides, const Py_ssize_t *smalls)
{
    Py_ssize_t count = (Py_ssize_t)strlen(kinds);
    PyObject *result = PyTuple_New(count);
    if (result == NULL) {
        return NULL;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *item = kinds[k] == 'w' ? wide_long(wides[k]) : PyLong_FromSsize_t(smalls[k]);
        if (item == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyTuple_SET_ITEM(result, k, item);
    }
    return result;
}

/* *total (at *scale decimals) += value (at ``decimals``), at the larger scale; 0 on overflow. */
static int
add_scaled(wide_t *total, Py_ssize_t *scale, wide_t value, Py_ssize_t decimals)
{
    if (decimals > *scale) {
        if (!scale_up(total, decimals - *scale)) {
            return 0;
        }
        *scale = decimals;
    }
    else if (!scale_up(&value, *scale - decimals)) {
        return 0;
    }
    return add_to(total, value);
}

static PyObject *
sum_qty(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sum_qty(levels, n) takes 2 arguments");
        return NULL;
    }
    PyObject **items;
    Py_ssize_t count;
    if (levels_arg(args[0], args[1], &items, &count) < 0) {
        return NULL;
    }
    wide_t total = 0;
    Py_ssize_t scale = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *price, *qty;
        Plain q;
        if (level_tokens(items[i], &price, &qty) < 0) {
            return NULL;
        }
        int plain = read_plain(qty, &q);
        if (plain < 0) {
            return NULL;
        }
        if (!plain || !add_scaled(&total, &scale, q.value, q.decimals)) {
            Py_RETURN_NONE;
        }
    }
    wide_t wides[2] = {total, 0};
    Py_ssize_t smalls[2] = {0, scale};
    return int_tuple("ws", wides, smalls);
}

/* ``limit`` as two positive machine integers: 1, 0 if one does not fit, -1 on error. */
static int
limit_arg(PyObject *limit, wide_t *num, wide_t *den)
{
    if (!PyTuple_Check(limit) || PyTuple_GET_SIZE(limit) != 2 ||
        !PyLong_Check(PyTuple_GET_ITEM(limit, 0)) || !PyLong_Check(PyTuple_GET_ITEM(limit, 1))) {
        PyErr_SetString(PyExc_TypeError, "limit must be None or a (num, den) tuple of ints");
        return -1;
    }
    wide_t *out[2] = {num, den};
    int fits = 1;
    for (int k = 0; k < 2; k++) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(limit, k), &overflow);
        if (value == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (overflow < 0 || (!overflow && value <= 0)) {
            PyErr_SetString(PyExc_ValueError, "limit must be two ints > 0");
            return -1;
        }
        if (overflow) {
            fits = 0;
        }
        else {
            *out[k] = (wide_t)value;
        }
    }
    return fits;
}

/*
 * ``start`` as the sums to continue: (qty, qty_scale, notional, notional_scale), ints >= 0.
 * 1, 0 if one does not fit 63 bits, -1 on error.
 */
static int
start_arg(PyObject *start, wide_t *qty, Py_ssize_t *qty_scale, wide_t *notional,
          Py_ssize_t *notional_scale)
{
    if (!PyTuple_Check(start) || PyTuple_GET_SIZE(start) != 4) {
        PyErr_SetString(PyExc_TypeError, "start must be None or a (qty, qty_scale, notional, "
                                         "notional_scale) tuple of ints");
        return -1;
    }
    long long values[4];
    int fits = 1;
    for (int k = 0; k < 4; k++) {
        PyObject *item = PyTuple_GET_ITEM(start, k);
        if (!PyLong_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "start must be None or a (qty, qty_scale, "
                                             "notional, notional_scale) tuple of ints");
            return -1;
        }
        int overflow;
        values[k] = PyLong_AsLongLongAndOverflow(item, &overflow);
        if (values[k] == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (overflow < 0 || (!overflow && values[k] < 0)) {
            PyErr_SetString(PyExc_ValueError, "start must be ints >= 0");
            return -1;
        }
        if (overflow) {
            fits = 0;
        }
    }
    if (fits) {
        *qty = (wide_t)values[0];
        *qty_scale = (Py_ssize_t)values[1];
        *notional = (wide_t)values[2];
        *notional_scale = (Py_ssize_t)values[3];
    }
    return fits;
}

static PyObject *
sum_notional(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs < 2 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "sum_notional(levels, n, limit=None, start=None) "
                                         "takes 2 to 4 positional arguments");
        return NULL;
    }
    PyObject **items;
    Py_ssize_t count;
    if (levels_arg(args[0], args[1], &items, &count) < 0) {
        return NULL;
    }
    wide_t num = 0, den = 0;
    wide_t qty_total = 0, notional = 0;
    Py_ssize_t qty_scale = 0, notional_scale = 0, levels = 0;
    int limited = nargs >= 3 && args[2] != Py_None;
    int fits = 1;
    if (limited) {
        fits = limit_arg(args[2], &num, &den);
    }
    if (fits > 0 && nargs == 4 && args[3] != Py_None) {
        fits = start_arg(args[3], &qty_total, &qty_scale, &notional, &notional_scale);
    }
    if (fits <= 0) {
        if (fits < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    for (; levels < count; levels++) {
        PyObject *price, *qty;
        Plain p, q;
        if (level_tokens(items[levels], &price, &qty) < 0) {
            return NULL;
        }
        int plain = read_plain(qty, &q);
        if (plain <= 0) {
            if (plain < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        /* The quantity up to and including this level. */
        wide_t cumulative = qty_total;
        Py_ssize_t cumulative_scale = qty_scale;
        if (!add_scaled(&cumulative, &cumulative_scale, q.value, q.decimals)) {
            Py_RETURN_NONE;
        }
        if (limited) {
            /* cumulative / 10**scale >= num / den: the level is not taken whole. */
            wide_t left, right = num;
            if (!multiply(cumulative, den, &left) || !scale_up(&right, cumulative_scale)) {
                Py_RETURN_NONE;
            }
            if (left >= right) {
                break;
            }
        }
        plain = read_plain(price, &p);
        if (plain <= 0) {
            if (plain < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        wide_t product;
        if (!multiply(p.value, q.value, &product) ||
            !add_scaled(&notional, &notional_scale, product, p.decimals + q.decimals)) {
            Py_RETURN_NONE;
        }
        qty_total = cumulative;
        qty_scale = cumulative_scale;
    }
    wide_t wides[5] = {0, qty_total, 0, notional, 0};
    Py_ssize_t smalls[5] = {levels, 0, qty_scale, 0, notional_scale};
    return int_tuple("swsws", wides, smalls);
}

static PyObject *
micro_parts(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "micro_parts(bid, ask) takes 2 arguments");
        return NULL;
    }
    PyObject *tokens[4];
    Plain bid_price, bid_qty, ask_price, ask_qty;
    Plain *read[4] = {&bid_price, &bid_qty, &ask_price, &ask_qty};
    if (level_tokens(args[0], &tokens[0], &tokens[1]) < 0 ||
        level_tokens(args[1], &tokens[2], &tokens[3]) < 0) {
        return NULL;
    }
    for (int k = 0; k < 4; k++) {
        int plain = read_plain(tokens[k], read[k]);
        if (plain <= 0) {
            if (plain < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
    }
    /* bid_price * ask_qty + ask_price * bid_qty, and bid_qty + ask_qty, with their scales */
    wide_t numerator, second, denominator = bid_qty.value;
    Py_ssize_t numerator_scale = bid_price.decimals + ask_qty.decimals;
    Py_ssize_t denominator_scale = bid_qty.decimals;
    if (!multiply(bid_price.value, ask_qty.value, &numerator) ||
        !multiply(ask_price.value, bid_qty.value, &second) ||
        !add_scaled(&numerator, &numerator_scale, second, ask_price.decimals + bid_qty.decimals) ||
        !add_scaled(&denominator, &denominator_scale, ask_qty.value, ask_qty.decimals) ||
        denominator == 0) {
        Py_RETURN_NONE;
    }
    wide_t wides[3] = {numerator, denominator, 0};
    Py_ssize_t smalls[3] = {0, 0, denominator_scale - numerator_scale};
    return int_tuple("wws", wides, smalls);
}

static PyMethodDef methods[] = {
    {"apply_update", (PyCFunction)(void (*)(void))apply_update, METH_FASTCALL,
     "apply_update(book, bids, asks) -> int\n\n"
     "Apply an update to a live book and return its CRC32. The compiled form of "
     "OrderBook._apply_update_py."},
    {"sum_qty", (PyCFunction)(void (*)(void))sum_qty, METH_FASTCALL,
     "sum_qty(levels, n) -> tuple[int, int] | None\n\n"
     "(sum of qty * 10**d, d) over the first n (price, qty) token pairs, d their most "
     "decimals; None if a qty is not plain or a machine word is too small."},
    {"sum_notional", (PyCFunction)(void (*)(void))sum_notional, METH_FASTCALL,
     "sum_notional(levels, n, limit=None, start=None) -> tuple[int, int, int, int, int] | "
     "None\n\n"
     "(levels, sum of qty * 10**dq, dq, sum of price * qty * 10**dn, dn) over the first n "
     "levels, or over those before the cumulative qty reaches limit = (num, den); the sums "
     "continue start = (qty, dq, notional, dn)."},
    {"micro_parts", (PyCFunction)(void (*)(void))micro_parts, METH_FASTCALL,
     "micro_parts(bid, ask) -> tuple[int, int, int] | None\n\n"
     "(numerator, denominator, exponent) of the microprice of two (price, qty) token pairs."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "kraken_proto._speedups",
    "The L2 book's update loop and exact token sums, compiled (optional; book.py and "
    "analytics/depth.py have the same in Python).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

static int
intern(PyObject **slot, const char *name)
{
    *slot = PyUnicode_InternFromString(name);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (intern(&s_price, "_price") < 0 || intern(&s_qty_fragment, "_qty_fragment") < 0 ||
        intern(&s_fragment, "_fragment") < 0 || intern(&s_compact, "compact") < 0 ||
        intern(&s_settle_deep, "_settle_deep") < 0) {
        return NULL;
    }
    for (int attr = 0; attr < N_ATTRS; attr++) {
        if (intern(&attr_str[attr], attr_names[attr]) < 0) {
            return NULL;
        }
    }
    crc_init();
    tens_init();
    PyObject *self = PyModule_Create(&module);
    if (self == NULL || PyModule_AddIntConstant(self, "TOP", TOP) < 0 ||
        PyModule_AddIntConstant(self, "TRUNCATED", TRUNCATED) < 0) {
        Py_XDECREF(self);
        return NULL;
    }
    return self;
}
