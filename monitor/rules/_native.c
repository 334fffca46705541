/* The matcher's per-article loops in C: an optional speed-up of monitor/rules/native.py, which
 * holds the same functions in Python (used where this did not compile, and by the tests that
 * check the two agree). They walk the Python objects the matcher holds (the tokens `str.split`
 * gave, the index's dicts) and flat arrays of C ints the index keeps for them (term numbers,
 * second terms, rules' clauses), without the interpreter's cost per step: at 10,000 rules the
 * matcher costs 3.0 times tokenising an article with them, 6.5 times without.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

static PyObject *ALONE; /* interned attribute name of index._Filed */

/* token_hashes(tokens) -> bytes: each token's hash, a Py_hash_t each, side by side; then, for a
 * field of TABLE_FROM tokens or more, a table of where each hash value is (Tokens). Scanning
 * the hashes rather than the tokens reads one contiguous block instead of a str object per
 * token (700 of them, a cache line each); the table finds a word's places without a scan at
 * all: at 100,000 rules an article's leaves scanned its fields 110 times. */
#define TABLE_FROM 32

typedef struct {
    Py_ssize_t n;          /* tokens */
    const Py_hash_t *hash; /* n hashes */
    /* When there is a table (else NULL): next[i], the next position after i whose hash falls
     * in the same bucket, -1 at the end; head[b], the first position in bucket b (mask + 1
     * buckets, a power of two), -1 for none. Chains run in order of position. */
    const int32_t *next, *head;
    size_t mask;
} Tokens;

static PyObject *token_hashes(PyObject *self, PyObject *tokens) {
    if (!PyList_Check(tokens)) {
        PyErr_SetString(PyExc_TypeError, "token_hashes: a list is expected");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(tokens), buckets = 0;
    if (n >= TABLE_FROM && n <= INT32_MAX / 4)
        for (buckets = 1; buckets < 2 * n; buckets <<= 1) {
        }
    Py_ssize_t size = n * (Py_ssize_t)sizeof(Py_hash_t);
    if (buckets) size += (n + buckets) * (Py_ssize_t)sizeof(int32_t);
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) return NULL;
    Py_hash_t *hashes = (Py_hash_t *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyList_GET_SIZE(tokens) != n) { /* a token's __hash__ changed the list */
            PyErr_SetString(PyExc_RuntimeError, "token_hashes: the list changed size");
            Py_DECREF(out);
            return NULL;
        }
        PyObject *token = PyList_GET_ITEM(tokens, i);
        Py_INCREF(token);
        hashes[i] = PyObject_Hash(token);
        Py_DECREF(token);
        if (hashes[i] == -1) {
            Py_DECREF(out);
            return NULL;
        }
    }
    if (buckets) {
        int32_t *next = (int32_t *)(hashes + n), *head = next + n;
        size_t mask = (size_t)buckets - 1;
        memset(head, 0xff, (size_t)buckets * sizeof(int32_t)); /* -1 everywhere */
        for (Py_ssize_t i = n - 1; i >= 0; i--) { /* backwards: each chain in order */
            size_t b = (size_t)hashes[i] & mask;
            next[i] = head[b];
            head[b] = (int32_t)i;
        }
    }
    return out;
}

/* Read token_hashes(tokens) into `t`, checking it is theirs by its size. */
static int read_tokens(PyObject *tokens, PyObject *hashes, Tokens *t) {
    if (!PyList_Check(tokens) || !PyBytes_Check(hashes)) {
        PyErr_SetString(PyExc_TypeError, "tokens must be a list, hashes bytes");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(tokens), size = PyBytes_GET_SIZE(hashes);
    Py_ssize_t table = size - n * (Py_ssize_t)sizeof(Py_hash_t);
    Py_ssize_t buckets = table / (Py_ssize_t)sizeof(int32_t) - n;
    t->n = n;
    t->hash = (const Py_hash_t *)PyBytes_AS_STRING(hashes);
    t->next = t->head = NULL;
    t->mask = 0;
    if (table == 0) return 0;
    if (table < 0 || n > INT32_MAX / 4 || table % (Py_ssize_t)sizeof(int32_t) != 0 ||
        buckets <= 0 || (buckets & (buckets - 1)) != 0) {
        PyErr_SetString(PyExc_ValueError, "hashes are not those of the tokens");
        return -1;
    }
    t->next = (const int32_t *)(t->hash + n);
    t->head = t->next + n;
    t->mask = (size_t)buckets - 1;
    return 0;
}

#define FEW_WORDS 16

/* The hashes of `words` (a tuple of str) into `hash`, which holds `k` of them. */
static int hash_words(PyObject *words, Py_hash_t *hash, Py_ssize_t k) {
    for (Py_ssize_t j = 0; j < k; j++) {
        PyObject *word = PyTuple_GET_ITEM(words, j);
        if (!PyUnicode_Check(word)) {
            PyErr_SetString(PyExc_TypeError, "words must be str");
            return -1;
        }
        hash[j] = PyObject_Hash(word);
        if (hash[j] == -1) return -1;
    }
    return 0;
}

/* 1 if token i of `tokens` is `word` (whose hash is `hash`), 0 if not, -1 on error. */
static int token_is(PyObject *tokens, const Tokens *t, Py_ssize_t i, PyObject *word,
                    Py_hash_t hash) {
    if (t->hash[i] != hash) return 0;
    PyObject *token = PyList_GET_ITEM(tokens, i);
    if (token == word) return 1;
    if (!PyUnicode_Check(token)) return 0;
    int same = PyUnicode_Compare(token, word);
    if (same == -1 && PyErr_Occurred()) return -1;
    return same == 0;
}

/* Append the hit (name, start, end, label, entity) to `out`. */
static int append_span(PyObject *out, Py_ssize_t start, Py_ssize_t end, PyObject *name,
                       PyObject *label, PyObject *entity);

/* Append position i to `out`: as an int, or, when `name` is not NULL, as a hit
 * (name, i, i + 1, label, entity). */
static int append_place(PyObject *out, Py_ssize_t i, PyObject *name, PyObject *label,
                        PyObject *entity) {
    if (name != NULL) return append_span(out, i, i + 1, name, label, entity);
    PyObject *item = PyLong_FromSsize_t(i);
    if (item == NULL) return -1;
    int failed = PyList_Append(out, item);
    Py_DECREF(item);
    return failed;
}

static int append_span(PyObject *out, Py_ssize_t at, Py_ssize_t to, PyObject *name,
                       PyObject *label, PyObject *entity) {
    PyObject *item = PyTuple_New(5);
    PyObject *start = PyLong_FromSsize_t(at), *end = PyLong_FromSsize_t(to);
    if (item == NULL || start == NULL || end == NULL) {
        Py_XDECREF(item);
        Py_XDECREF(start);
        Py_XDECREF(end);
        return -1;
    }
    Py_INCREF(name);
    Py_INCREF(label);
    Py_INCREF(entity);
    PyTuple_SET_ITEM(item, 0, name);
    PyTuple_SET_ITEM(item, 1, start);
    PyTuple_SET_ITEM(item, 2, end);
    PyTuple_SET_ITEM(item, 3, label);
    PyTuple_SET_ITEM(item, 4, entity);
    int failed = PyList_Append(out, item);
    Py_DECREF(item);
    return failed;
}

static int by_position(const void *a, const void *b) {
    Py_ssize_t x = *(const Py_ssize_t *)a, y = *(const Py_ssize_t *)b;
    return (x > y) - (x < y);
}

/* The positions of `word` (hash `hash`) by the table's chain, appended to `at` (growing it). */
static int chain_places(PyObject *tokens, const Tokens *t, PyObject *word, Py_hash_t hash,
                        Py_ssize_t **at, Py_ssize_t *count, Py_ssize_t *room) {
    Py_ssize_t last = -1;
    for (int32_t i = t->head[(size_t)hash & t->mask]; i >= 0; i = t->next[i]) {
        /* A table not made by token_hashes could loop or point past the tokens. */
        if (i <= last || i >= t->n || PyList_GET_SIZE(tokens) != t->n) {
            PyErr_SetString(PyExc_ValueError, "hashes are not those of the tokens");
            return -1;
        }
        last = i;
        int same = token_is(tokens, t, i, word, hash);
        if (same < 0) return -1;
        if (!same) continue;
        if (*count == *room) {
            Py_ssize_t more = *room * 2;
            Py_ssize_t *grown = PyMem_Realloc(*at, (size_t)more * sizeof(Py_ssize_t));
            if (grown == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            *at = grown;
            *room = more;
        }
        (*at)[(*count)++] = i;
    }
    return 0;
}

/* Append to `out` each position of `tokens` holding one of `words` (hashes in `word_hash`), in
 * order and once: as an int, or, when `name` is not NULL, as a hit (name, i, i + 1, label,
 * entity). `hashes`: token_hashes(tokens), with a table or without. */
static int scan(PyObject *tokens, PyObject *hashes, PyObject *words, const Py_hash_t *word_hash,
                PyObject *name, PyObject *label, PyObject *entity, PyObject *out) {
    Tokens t;
    if (read_tokens(tokens, hashes, &t) < 0) return -1;
    Py_ssize_t n = t.n, k = PyTuple_GET_SIZE(words);
    if (t.head != NULL) { /* each word's chain, then the places in order, each once */
        Py_ssize_t room = 16, count = 0;
        Py_ssize_t *at = PyMem_Malloc((size_t)room * sizeof(Py_ssize_t));
        if (at == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        int failed = 0;
        for (Py_ssize_t j = 0; j < k && !failed; j++)
            failed = chain_places(tokens, &t, PyTuple_GET_ITEM(words, j), word_hash[j], &at,
                                  &count, &room) < 0;
        if (!failed && k > 1) qsort(at, (size_t)count, sizeof(Py_ssize_t), by_position);
        for (Py_ssize_t c = 0; c < count && !failed; c++)
            if (c == 0 || at[c] != at[c - 1])
                failed = append_place(out, at[c], name, label, entity) < 0;
        PyMem_Free(at);
        return failed ? -1 : 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        for (Py_ssize_t j = 0; j < k; j++) {
            if (PyList_GET_SIZE(tokens) != n) {
                PyErr_SetString(PyExc_RuntimeError, "the tokens changed");
                return -1;
            }
            int same = token_is(tokens, &t, i, PyTuple_GET_ITEM(words, j), word_hash[j]);
            if (same < 0) return -1;
            if (!same) continue;
            if (append_place(out, i, name, label, entity) < 0) return -1;
            break;
        }
    }
    return 0;
}

/* positions_of(tokens, hashes, words) -> [i for i, token in enumerate(tokens) if token in words]
 * `hashes`: token_hashes(tokens). `words`: a tuple of str. */
static PyObject *positions_of(PyObject *self, PyObject *args) {
    PyObject *tokens, *hashes, *words;
    if (!PyArg_ParseTuple(args, "O!SO!:positions_of", &PyList_Type, &tokens, &hashes,
                          &PyTuple_Type, &words))
        return NULL;
    Py_ssize_t k = PyTuple_GET_SIZE(words);
    Py_hash_t few[FEW_WORDS];
    Py_hash_t *word_hash = k <= FEW_WORDS ? few : PyMem_Malloc(k * sizeof(Py_hash_t));
    if (word_hash == NULL) return PyErr_NoMemory();
    PyObject *out = NULL;
    if (hash_words(words, word_hash, k) == 0 && (out = PyList_New(0)) != NULL &&
        scan(tokens, hashes, words, word_hash, NULL, NULL, NULL, out) < 0)
        Py_CLEAR(out);
    if (word_hash != few) PyMem_Free(word_hash);
    return out;
}

/* `out`, a list, or None in its place when it is empty (hits as the nodes give them). */
static PyObject *none_if_empty(PyObject *out) {
    if (PyList_GET_SIZE(out) > 0) return out;
    Py_DECREF(out);
    Py_RETURN_NONE;
}

/* leaf_hits(fields, words, label, entity) -> [(name, i, i + 1, label, entity), ...] or None
 * `fields`: (name, tokens, hashes) tuples, hashes being token_hashes(tokens); `words`: a tuple
 * of str. The hits of a word, or of a stem's or a prefix's words, field after field, as
 * nodes.Seq._word_hits and _forms_hits make them; None where there is none. */
static PyObject *hits_in(PyObject *fields, PyObject *words, PyObject *label, PyObject *entity) {
    if (!PyList_Check(fields) || !PyTuple_Check(words)) {
        PyErr_SetString(PyExc_TypeError, "leaf_hits: fields are a list, words a tuple");
        return NULL;
    }
    Py_ssize_t k = PyTuple_GET_SIZE(words);
    Py_hash_t few[FEW_WORDS];
    Py_hash_t *word_hash = k <= FEW_WORDS ? few : PyMem_Malloc(k * sizeof(Py_hash_t));
    if (word_hash == NULL) return PyErr_NoMemory();
    PyObject *out = NULL;
    if (hash_words(words, word_hash, k) < 0 || (out = PyList_New(0)) == NULL) goto done;
    for (Py_ssize_t f = 0; f < PyList_GET_SIZE(fields); f++) {
        PyObject *field = PyList_GET_ITEM(fields, f);
        if (!PyTuple_Check(field) || PyTuple_GET_SIZE(field) != 3) {
            PyErr_SetString(PyExc_TypeError, "leaf_hits: a field is (name, tokens, hashes)");
            Py_CLEAR(out);
            goto done;
        }
        Py_INCREF(field); /* held: comparing tokens may run Python code that drops it */
        int failed = scan(PyTuple_GET_ITEM(field, 1), PyTuple_GET_ITEM(field, 2), words,
                          word_hash, PyTuple_GET_ITEM(field, 0), label, entity, out) < 0;
        Py_DECREF(field);
        if (failed) {
            Py_CLEAR(out);
            goto done;
        }
    }
    out = none_if_empty(out);
done:
    if (word_hash != few) PyMem_Free(word_hash);
    return out;
}

static PyObject *leaf_hits(PyObject *self, PyObject *args) {
    PyObject *fields, *words, *label, *entity;
    if (!PyArg_ParseTuple(args, "O!O!OO:leaf_hits", &PyList_Type, &fields, &PyTuple_Type, &words,
                          &label, &entity))
        return NULL;
    return hits_in(fields, words, label, entity);
}

static int add_words_of_form(PyObject *table, PyObject *words, long number, PyObject *out);

/* The attributes seq_hits reads, interned. */
static PyObject *MEMO, *WORDS, *SCANS_CACHE, *SCANS, *FORM_IDS, *FORMS, *FORM_WORDS, *LANGUAGES,
    *SPEC, *WORDS_OF, *HITS;

/* A document's attributes that leaves read, each fetched once for a whole walk of rules (at
 * 100,000 rules, reading them for each of an article's 176 leaves was a tenth of matching). */
enum { D_MEMO, D_WORDS, D_SCANS, D_FORM_IDS, D_FORMS, D_FORM_WORDS, D_LANGUAGES, D_COUNT };
typedef struct {
    PyObject *doc;
    PyObject *attr[D_COUNT]; /* held once fetched, NULL before */
} Doc;

static PyObject *DOC_ATTRS[D_COUNT]; /* their names, interned */

/* A new reference to the document's attribute `which`, fetched the first time. */
static PyObject *doc_attr(Doc *d, int which) {
    if (d->attr[which] == NULL && (d->attr[which] = PyObject_GetAttr(d->doc, DOC_ATTRS[which])) == NULL)
        return NULL;
    return Py_NewRef(d->attr[which]);
}

static void doc_release(Doc *d) {
    for (int i = 0; i < D_COUNT; i++) Py_CLEAR(d->attr[i]);
}

/* The words of a stem or prefix leaf in the document (Document.words_of), as a tuple: from
 * the index's list of its words of each form (form_table) when the index names the forms,
 * else from doc.words_of(part). */
static PyObject *form_words(Doc *d, PyObject *forms, PyObject *part) {
    PyObject *ids = doc_attr(d, D_FORM_IDS), *table = NULL, *words = NULL;
    PyObject *languages = NULL, *out = NULL, *found = NULL;
    if (ids == NULL || (table = doc_attr(d, D_FORMS)) == NULL ||
        (words = doc_attr(d, D_FORM_WORDS)) == NULL ||
        (languages = doc_attr(d, D_LANGUAGES)) == NULL)
        goto done;
    if (!PyTuple_Check(forms) || !PyDict_Check(ids)) {
        PyErr_SetString(PyExc_TypeError, "seq_hits: a spec's forms, or doc.form_ids");
        goto done;
    }
    if ((found = PyList_New(0)) == NULL) goto done;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(forms); i++) {
        PyObject *pair = PyTuple_GET_ITEM(forms, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
            PyErr_SetString(PyExc_TypeError, "seq_hits: a form is (language, form)");
            goto done;
        }
        PyObject *language = PyTuple_GET_ITEM(pair, 0), *form = PyTuple_GET_ITEM(pair, 1);
        if (PyUnicode_GET_LENGTH(language) > 0) { /* a stem: in the document's languages? */
            int in = PySequence_Contains(languages, language);
            if (in < 0) goto done;
            if (!in) continue;
        }
        PyObject *number = PyDict_GetItemWithError(ids, form);
        if (number == NULL) {
            if (PyErr_Occurred()) goto done;
            /* Not named by the document's index: as the Python code finds it. */
            PyObject *listed = PyObject_CallMethodOneArg(d->doc, WORDS_OF, part);
            if (listed != NULL) {
                out = PySequence_Tuple(listed);
                Py_DECREF(listed);
            }
            goto done;
        }
        long at = PyLong_AsLong(number);
        if (at == -1 && PyErr_Occurred()) goto done;
        /* A word with a stem in both languages comes twice: its places are found once. */
        if (add_words_of_form(table, words, at, found) < 0) goto done;
    }
    out = PyList_AsTuple(found);
done:
    Py_XDECREF(ids);
    Py_XDECREF(table);
    Py_XDECREF(words);
    Py_XDECREF(languages);
    Py_XDECREF(found);
    return out;
}

/* The hits (name, i, i + n, label, entity) of the n words of `phrase` (a tuple of str) standing
 * together in each field of `fields` (name, tokens, hashes), field after field; None where
 * there is none: as nodes.Seq._hits finds a phrase of plain words. */
static PyObject *phrase_hits(PyObject *fields, PyObject *phrase, PyObject *label,
                             PyObject *entity) {
    Py_ssize_t n = PyTuple_GET_SIZE(phrase);
    Py_hash_t few[FEW_WORDS];
    Py_hash_t *hash = n <= FEW_WORDS ? few : PyMem_Malloc(n * sizeof(Py_hash_t));
    if (hash == NULL) return PyErr_NoMemory();
    PyObject *out = NULL;
    if (n < 1 || !PyList_Check(fields)) {
        PyErr_SetString(PyExc_TypeError, "seq_hits: a phrase of words, and a list of fields");
        goto done;
    }
    if (hash_words(phrase, hash, n) < 0 || (out = PyList_New(0)) == NULL) goto done;
    for (Py_ssize_t f = 0; f < PyList_GET_SIZE(fields); f++) {
        PyObject *field = PyList_GET_ITEM(fields, f);
        if (!PyTuple_Check(field) || PyTuple_GET_SIZE(field) != 3) {
            PyErr_SetString(PyExc_TypeError, "seq_hits: a field is (name, tokens, hashes)");
            Py_CLEAR(out);
            goto done;
        }
        PyObject *name = PyTuple_GET_ITEM(field, 0), *tokens = PyTuple_GET_ITEM(field, 1);
        Tokens t;
        if (read_tokens(tokens, PyTuple_GET_ITEM(field, 2), &t) < 0) {
            Py_CLEAR(out);
            goto done;
        }
        Py_INCREF(field); /* held while its tokens are read */
        PyObject *first = PyTuple_GET_ITEM(phrase, 0);
        Py_ssize_t i = t.head != NULL ? t.head[(size_t)hash[0] & t.mask] : 0, last = -1;
        while (i >= 0 && i < t.n) {
            if (t.head != NULL && (i <= last || t.next[i] >= t.n)) { /* not token_hashes' */
                PyErr_SetString(PyExc_ValueError, "hashes are not those of the tokens");
                Py_DECREF(field);
                Py_CLEAR(out);
                goto done;
            }
            last = i;
            int same = i + n <= t.n && PyList_GET_SIZE(tokens) == t.n;
            for (Py_ssize_t k = 0; k < n && same > 0; k++)
                same = token_is(tokens, &t, i + k, k ? PyTuple_GET_ITEM(phrase, k) : first,
                                hash[k]);
            if (same < 0 || (same && append_span(out, i, i + n, name, label, entity) < 0)) {
                Py_DECREF(field);
                Py_CLEAR(out);
                goto done;
            }
            i = t.head != NULL ? t.next[i] : i + 1;
        }
        Py_DECREF(field);
    }
    out = none_if_empty(out);
done:
    if (hash != few) PyMem_Free(hash);
    return out;
}

/* The fields' (name, tokens, hashes) as Document.scans gives them, from its cache. */
static PyObject *scans_of(Doc *d, PyObject *fields) {
    PyObject *cache = doc_attr(d, D_SCANS);
    if (cache == NULL) return NULL;
    PyObject *found = PyDict_Check(cache) ? PyDict_GetItemWithError(cache, fields) : NULL;
    Py_XINCREF(found);
    Py_DECREF(cache);
    if (found != NULL || PyErr_Occurred()) return found;
    return PyObject_CallMethodOneArg(d->doc, SCANS, fields);
}

/* seq_hits(seq, doc) -> the hits of a leaf of one word, one prefix, one stem or a phrase of
 * plain words (nodes.Seq with a `spec`: word, forms, fields, label, entity, part, phrase),
 * remembered in doc.memo: what Seq.hits gives, in one call instead of five Python functions
 * (at 100,000 rules an article evaluates 150 leaves). */
static PyObject *leaf_eval(PyObject *seq, PyObject *spec, Doc *d) {
    PyObject *memo = doc_attr(d, D_MEMO), *words = NULL, *scans = NULL;
    PyObject *out = NULL;
    if (memo == NULL) return NULL;
    if (!PyDict_Check(memo)) {
        PyErr_SetString(PyExc_TypeError, "seq_hits: doc.memo is a dict");
        goto done;
    }
    out = PyDict_GetItemWithError(memo, seq);
    if (out != NULL || PyErr_Occurred()) {
        Py_XINCREF(out);
        goto done;
    }
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 8) {
        PyErr_SetString(PyExc_TypeError, "seq_hits: a spec is (0, word, forms, fields, label, "
                                         "entity, part, phrase)");
        goto done;
    }
    PyObject *word = PyTuple_GET_ITEM(spec, 1), *fields = PyTuple_GET_ITEM(spec, 3);
    PyObject *phrase = PyTuple_GET_ITEM(spec, 7);
    PyObject *label = PyTuple_GET_ITEM(spec, 4), *entity = PyTuple_GET_ITEM(spec, 5);
    if (phrase != Py_None) { /* every word in the article, then standing together */
        PyObject *all = doc_attr(d, D_WORDS);
        if (all == NULL) goto done;
        if (!PyTuple_Check(phrase) || !PyAnySet_Check(all)) {
            PyErr_SetString(PyExc_TypeError, "seq_hits: a phrase is a tuple, doc.words a set");
            Py_DECREF(all);
            goto done;
        }
        int has = 1;
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(phrase) && has > 0; k++)
            has = PySet_Contains(all, PyTuple_GET_ITEM(phrase, k));
        Py_DECREF(all);
        if (has < 0) goto done;
        if (!has) {
            out = Py_None;
            Py_INCREF(out);
        } else if ((scans = scans_of(d, fields)) != NULL) {
            out = phrase_hits(scans, phrase, label, entity);
        }
    } else if (word != Py_None) {
        PyObject *all = doc_attr(d, D_WORDS);
        if (all == NULL) goto done;
        int has = PyAnySet_Check(all) ? PySet_Contains(all, word) : PySequence_Contains(all, word);
        Py_DECREF(all);
        if (has < 0) goto done;
        if (has && (words = PyTuple_Pack(1, word)) == NULL) goto done;
    } else {
        words = form_words(d, PyTuple_GET_ITEM(spec, 2), PyTuple_GET_ITEM(spec, 6));
        if (words == NULL) goto done;
    }
    if (phrase == Py_None) {
        if (words == NULL || PyTuple_GET_SIZE(words) == 0) {
            out = Py_None;
            Py_INCREF(out);
        } else if ((scans = scans_of(d, fields)) != NULL) {
            out = hits_in(scans, words, label, entity);
        }
    }
    if (out != NULL && PyDict_SetItem(memo, seq, out) < 0) Py_CLEAR(out);
done:
    Py_DECREF(memo);
    Py_XDECREF(words);
    Py_XDECREF(scans);
    return out;
}

static PyObject *seq_hits(PyObject *self, PyObject *args) {
    PyObject *seq, *doc;
    if (!PyArg_ParseTuple(args, "OO:seq_hits", &seq, &doc)) return NULL;
    PyObject *spec = PyObject_GetAttr(seq, SPEC);
    if (spec == NULL) return NULL;
    Doc d = {doc, {NULL}};
    PyObject *out = leaf_eval(seq, spec, &d);
    doc_release(&d);
    Py_DECREF(spec);
    return out;
}

static PyObject *near_used(PyObject *lefts, PyObject *rights, Py_ssize_t distance, int ordered);

enum { LEAF, ALL_OF, ANY_OF, NONE_OF, NEAR };
#define PAIRS_TRIED 256 /* nodes._PAIRS_TRIED */

/* Whether any of `hits` is a key of `used`, then (`whole`) all of them made keys. */
static int add_whole(PyObject *used, PyObject *list) {
    PyObject *hits = PyList_AsTuple(list); /* held: hashing a hit may run Python code */
    if (hits == NULL) return -1;
    int any = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(hits) && !any; i++)
        any = PyDict_Contains(used, PyTuple_GET_ITEM(hits, i));
    for (Py_ssize_t i = 0; any > 0 && i < PyTuple_GET_SIZE(hits); i++)
        if (PyDict_SetDefault(used, PyTuple_GET_ITEM(hits, i), Py_None) == NULL) any = -1;
    Py_DECREF(hits);
    return any < 0 ? -1 : 0;
}

static PyObject *evaluate(PyObject *item, Doc *d);

/* nodes.Near.hits: both sides' hits, those that pair within the distance, a side's whole
 * hits where it is an AND or a NEAR (spec: 4, pairs_found, left, right, distance, ordered,
 * whole left, whole right; pairs_found, nodes.pairs_found, for sides of many hits). */
static PyObject *near_eval(PyObject *spec, Doc *d) {
    if (PyTuple_GET_SIZE(spec) != 8) {
        PyErr_SetString(PyExc_TypeError, "node_hits: a NEAR's spec has 8 items");
        return NULL;
    }
    PyObject *distance_item = PyTuple_GET_ITEM(spec, 4), *ordered_item = PyTuple_GET_ITEM(spec, 5);
    Py_ssize_t distance = PyLong_AsSsize_t(distance_item);
    if (distance == -1 && PyErr_Occurred()) return NULL;
    int ordered = PyObject_IsTrue(ordered_item);
    int whole[2] = {PyObject_IsTrue(PyTuple_GET_ITEM(spec, 6)),
                    PyObject_IsTrue(PyTuple_GET_ITEM(spec, 7))};
    if (PyErr_Occurred()) return NULL;
    PyObject *sides[2] = {NULL, NULL}, *used = NULL, *out = NULL;
    for (int side = 0; side < 2; side++) {
        sides[side] = evaluate(PyTuple_GET_ITEM(spec, 2 + side), d);
        if (sides[side] == NULL) goto done;
        if (sides[side] == Py_None || !PyObject_IsTrue(sides[side])) { /* `if not lefts` */
            out = Py_None;
            Py_INCREF(out);
            goto done;
        }
        if (!PyList_Check(sides[side])) {
            PyErr_SetString(PyExc_TypeError, "node_hits: hits are a list");
            goto done;
        }
    }
    if (PyList_GET_SIZE(sides[0]) * PyList_GET_SIZE(sides[1]) <= PAIRS_TRIED)
        used = near_used(sides[0], sides[1], distance, ordered);
    else
        used = PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(spec, 1), sides[0], sides[1],
                                            distance_item, ordered_item, NULL);
    if (used == NULL) goto done;
    if (!PyDict_Check(used)) {
        PyErr_SetString(PyExc_TypeError, "node_hits: pairs are a dict");
        goto done;
    }
    if (PyDict_GET_SIZE(used) == 0) {
        out = Py_None;
        Py_INCREF(out);
        goto done;
    }
    for (int side = 0; side < 2; side++)
        if (whole[side] && add_whole(used, sides[side]) < 0) goto done;
    out = PyDict_Keys(used);
done:
    Py_XDECREF(sides[0]);
    Py_XDECREF(sides[1]);
    Py_XDECREF(used);
    return out;
}

/* The hits of an AND, OR, NOT or NEAR by its spec (kind, what it needs), children evaluated
 * here too. */
static PyObject *spec_eval(PyObject *spec, Doc *d) {
    if (PyTuple_GET_SIZE(spec) < 2) {
        PyErr_SetString(PyExc_TypeError, "node_hits: a spec is a tuple (kind, ...)");
        return NULL;
    }
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    if (kind == -1 && PyErr_Occurred()) return NULL;
    PyObject *out = NULL, *children = PyTuple_GET_ITEM(spec, 1);
    switch (kind) {
    case ALL_OF:
    case ANY_OF:
        if (!PyTuple_Check(children)) {
            PyErr_SetString(PyExc_TypeError, "node_hits: children are a tuple");
            break;
        }
        out = kind == ALL_OF ? PyList_New(0) : Py_NewRef(Py_None);
        for (Py_ssize_t i = 0; out != NULL && i < PyTuple_GET_SIZE(children); i++) {
            PyObject *found = evaluate(PyTuple_GET_ITEM(children, i), d);
            if (found == NULL) {
                Py_CLEAR(out);
            } else if (found == Py_None) {
                if (kind == ALL_OF) { /* an AND fails with any child */
                    Py_SETREF(out, Py_NewRef(Py_None));
                    Py_DECREF(found);
                    break;
                }
            } else if (out == Py_None) { /* an OR's first child found: a copy (memoised) */
                Py_SETREF(out, PySequence_List(found));
            } else if (PyList_SetSlice(out, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, found) < 0) {
                Py_CLEAR(out);
            }
            Py_XDECREF(found);
        }
        break;
    case NONE_OF: {
        PyObject *found = evaluate(children, d);
        if (found != NULL) out = found == Py_None ? PyList_New(0) : Py_NewRef(Py_None);
        Py_XDECREF(found);
        break;
    }
    case NEAR:
        out = near_eval(spec, d);
        break;
    default:
        PyErr_SetString(PyExc_ValueError, "node_hits: an unknown kind of node");
    }
    return out;
}

/* The hits of an item of a spec: an AND, OR, NOT or NEAR by its spec (a tuple), without
 * reading its node; a node (not a tuple): a leaf (its spec's kind LEAF) evaluated here,
 * remembered by the node, or its `spec`'s tree, or a node without one (NOT NEAR, an entity,
 * a language) by its Python `hits`. A tree costs no Python call: at 100,000 rules an
 * article's AND, OR and NEAR nodes were 1.6 us each in Python, as many as its rules. */
static PyObject *evaluate(PyObject *item, Doc *d) {
    if (Py_EnterRecursiveCall(" in node_hits")) return NULL;
    PyObject *out = NULL;
    if (PyTuple_CheckExact(item)) {
        out = spec_eval(item, d);
    } else {
        PyObject *spec = PyObject_GetAttr(item, SPEC);
        if (spec == NULL) {
        } else if (spec == Py_None) {
            out = PyObject_CallMethodOneArg(item, HITS, d->doc);
        } else if (!PyTuple_CheckExact(spec) || PyTuple_GET_SIZE(spec) < 2) {
            PyErr_SetString(PyExc_TypeError, "node_hits: a spec is a tuple (kind, ...)");
        } else if (PyLong_CheckExact(PyTuple_GET_ITEM(spec, 0)) &&
                   PyLong_AsLong(PyTuple_GET_ITEM(spec, 0)) == LEAF) {
            out = leaf_eval(item, spec, d);
        } else {
            out = spec_eval(spec, d);
        }
        Py_XDECREF(spec);
    }
    Py_LeaveRecursiveCall();
    return out;
}

/* node_hits(node, doc) -> the hits of a node of the matcher's tree (nodes.Node.hits). */
static PyObject *node_hits(PyObject *self, PyObject *args) {
    PyObject *node, *doc;
    if (!PyArg_ParseTuple(args, "OO:node_hits", &node, &doc)) return NULL;
    Doc d = {doc, {NULL}};
    PyObject *out = evaluate(node, &d);
    doc_release(&d);
    return out;
}

/* hits_of(nodes, doc) -> [node_hits(node, doc) for node in nodes]: the document's attributes
 * read once for all of them. */
static PyObject *hits_of(PyObject *self, PyObject *args) {
    PyObject *nodes, *doc;
    if (!PyArg_ParseTuple(args, "O!O:hits_of", &PyList_Type, &nodes, &doc)) return NULL;
    PyObject *held = PyList_AsTuple(nodes); /* held: a node's Python hits may change the list */
    if (held == NULL) return NULL;
    Doc d = {doc, {NULL}};
    PyObject *out = PyList_New(PyTuple_GET_SIZE(held));
    for (Py_ssize_t i = 0; out != NULL && i < PyTuple_GET_SIZE(held); i++) {
        PyObject *found = evaluate(PyTuple_GET_ITEM(held, i), &d);
        if (found == NULL) Py_CLEAR(out);
        else PyList_SET_ITEM(out, i, found);
    }
    doc_release(&d);
    Py_DECREF(held);
    return out;
}

/* pairs_of(meanings, words, fields, found): for each meaning whose sixth item is a dict (the
 * first word of pairs a key or clause names: second word -> what the pair stands for), add to
 * the set `found` what each pair of its word (side by side in `words`) and the token after it
 * stands for, in each field (name, tokens, token_hashes(tokens)). The article's first words
 * go in a small table of their hashes, which each field's hashes are tested against: a
 * filter of the index's first words (thousands) cost 20 us an article at 10,000 rules, most
 * tokens missing the processor's cache. */
static PyObject *pairs_of(PyObject *self, PyObject *args) {
    PyObject *meanings, *words, *fields, *found;
    if (!PyArg_ParseTuple(args, "O!O!O!O!:pairs_of", &PyList_Type, &meanings, &PyList_Type,
                          &words, &PyList_Type, &fields, &PySet_Type, &found))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(meanings), firsts = 0;
    if (PyList_GET_SIZE(words) != n) {
        PyErr_SetString(PyExc_ValueError, "pairs_of: a word for each meaning");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *meaning = PyList_GET_ITEM(meanings, i);
        if (!PyTuple_Check(meaning)) {
            PyErr_SetString(PyExc_TypeError, "pairs_of: a meaning is a tuple");
            return NULL;
        }
        firsts += PyTuple_GET_SIZE(meaning) > 5 && PyTuple_GET_ITEM(meaning, 5) != Py_None;
    }
    if (firsts == 0) Py_RETURN_NONE;
    /* Open addressing, at most half full: each slot a first word's hash, and its meaning's
     * position plus one (0: empty). Words and their pair ends are held for the whole call. */
    size_t slots = 16;
    while (slots < (size_t)firsts * 2) slots <<= 1;
    Py_hash_t *slot_hash = PyMem_Calloc(slots, sizeof(Py_hash_t));
    Py_ssize_t *slot_of = PyMem_Calloc(slots, sizeof(Py_ssize_t));
    PyObject **held = PyMem_Calloc((size_t)firsts * 2, sizeof(PyObject *));
    Py_ssize_t holding = 0;
    int failed = 0;
    if (slot_hash == NULL || slot_of == NULL || held == NULL) {
        PyErr_NoMemory();
        failed = 1;
    }
    for (Py_ssize_t i = 0; i < n && !failed; i++) {
        if (PyList_GET_SIZE(meanings) != n || PyList_GET_SIZE(words) != n) {
            PyErr_SetString(PyExc_RuntimeError, "pairs_of: the meanings changed");
            failed = 1;
            break;
        }
        PyObject *meaning = PyList_GET_ITEM(meanings, i), *ends, *word;
        if (!PyTuple_Check(meaning) || PyTuple_GET_SIZE(meaning) < 6 ||
            (ends = PyTuple_GET_ITEM(meaning, 5)) == Py_None)
            continue;
        word = PyList_GET_ITEM(words, i);
        if (!PyDict_Check(ends) || !PyUnicode_Check(word) || holding >= firsts) {
            PyErr_SetString(PyExc_TypeError, "pairs_of: a dict of pair ends, and a str word");
            failed = 1;
            break;
        }
        Py_INCREF(word); /* held before hashing: a str subclass's __hash__ may drop them */
        Py_INCREF(ends);
        held[2 * holding] = word;
        held[2 * holding + 1] = ends;
        holding++;
        Py_hash_t hash = PyObject_Hash(word);
        if (hash == -1) {
            failed = 1;
            break;
        }
        size_t at = (size_t)hash & (slots - 1);
        while (slot_of[at] != 0) { /* the same word again: its later ends, as a dict keeps */
            if (slot_hash[at] == hash &&
                PyUnicode_Compare(held[2 * (slot_of[at] - 1)], word) == 0)
                break;
            if (PyErr_Occurred()) {
                failed = 1;
                break;
            }
            at = (at + 1) & (slots - 1);
        }
        slot_hash[at] = hash;
        slot_of[at] = holding; /* the held pair, plus one */
    }
    for (Py_ssize_t f = 0; f < PyList_GET_SIZE(fields) && !failed; f++) {
        PyObject *field = PyList_GET_ITEM(fields, f);
        if (!PyTuple_Check(field) || PyTuple_GET_SIZE(field) != 3) {
            PyErr_SetString(PyExc_TypeError, "pairs_of: a field is (name, tokens, hashes)");
            failed = 1;
            break;
        }
        Py_INCREF(field); /* held: comparisons may run Python code that drops it */
        PyObject *tokens = PyTuple_GET_ITEM(field, 1);
        Tokens t;
        failed = read_tokens(tokens, PyTuple_GET_ITEM(field, 2), &t) < 0;
        for (Py_ssize_t i = 0; !failed && i + 1 < t.n; i++) {
            size_t at = (size_t)t.hash[i] & (slots - 1);
            for (; slot_of[at] != 0 && !failed; at = (at + 1) & (slots - 1)) {
                if (slot_hash[at] != t.hash[i]) continue;
                if (PyList_GET_SIZE(tokens) != t.n) { /* Python code run by a comparison */
                    PyErr_SetString(PyExc_RuntimeError, "pairs_of: the tokens changed");
                    failed = 1;
                    break;
                }
                PyObject *word = held[2 * (slot_of[at] - 1)];
                PyObject *ends = held[2 * (slot_of[at] - 1) + 1];
                int same = token_is(tokens, &t, i, word, t.hash[i]);
                if (same < 0) failed = 1;
                if (same <= 0) continue;
                if (PyList_GET_SIZE(tokens) != t.n) {
                    PyErr_SetString(PyExc_RuntimeError, "pairs_of: the tokens changed");
                    failed = 1;
                    break;
                }
                PyObject *next = PyList_GET_ITEM(tokens, i + 1);
                Py_INCREF(next);
                PyObject *value = PyDict_GetItemWithError(ends, next);
                Py_XINCREF(value);
                Py_DECREF(next);
                if (value == NULL) {
                    failed = PyErr_Occurred() != NULL;
                } else {
                    failed = value != Py_None && PySet_Add(found, value) < 0;
                    Py_DECREF(value);
                }
                break; /* the words are distinct: no other slot holds this token */
            }
        }
        Py_DECREF(field);
    }
    for (Py_ssize_t h = 0; h < 2 * holding; h++) Py_DECREF(held[h]);
    PyMem_Free(slot_hash);
    PyMem_Free(slot_of);
    PyMem_Free(held);
    if (failed) return NULL;
    Py_RETURN_NONE;
}

/* Add every item of a list to a set. */
static int add_all(PyObject *found, PyObject *items) {
    if (!PyList_Check(items)) {
        PyErr_SetString(PyExc_TypeError, "presearch: filed items must be lists");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++)
        if (PySet_Add(found, PyList_GET_ITEM(items, i)) < 0) return -1;
    return 0;
}

/* Whether number `at` is set in the bit set `bits` of `size` numbers; -1 (an error set) where
 * it is out of range. */
static int is_set(const unsigned char *bits, Py_ssize_t size, int at) {
    if (at < 0 || at >= size) {
        PyErr_SetString(PyExc_ValueError, "presearch: a term's number is out of range");
        return -1;
    }
    return (bits[at >> 3] >> (at & 7)) & 1;
}

/* Add an entity key's items (index._Filed.alone) to the set `found`. */
static int add_filed(PyObject *found, PyObject *filed) {
    PyObject *alone = PyObject_GetAttr(filed, ALONE);
    if (alone == NULL) return -1;
    int failed = alone != Py_None && add_all(found, alone) < 0;
    Py_DECREF(alone);
    return failed ? -1 : 0;
}

/* Rule ids gathered by the presearch: C ints, grown as needed. */
typedef struct {
    int32_t *id;
    Py_ssize_t count, room;
} Ids;

static int add_id(Ids *ids, int32_t id) {
    if (ids->count == ids->room) {
        Py_ssize_t room = ids->room ? ids->room * 2 : 64;
        int32_t *grown = PyMem_Realloc(ids->id, (size_t)room * sizeof(int32_t));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        ids->id = grown;
        ids->room = room;
    }
    ids->id[ids->count++] = id;
    return 0;
}

static int by_id(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Add the items of the rule key laid out at `at` in `flat` (index._KeyIndex.seal) to `ids`:
 * those filed alone, and those filed by a second term the article has (bit set `terms`). A
 * key read already (bit set `seen`, by key number) is not read again. */
static int add_key(Ids *ids, const int32_t *flat, Py_ssize_t n, Py_ssize_t at,
                   unsigned char *seen, Py_ssize_t keys, const unsigned char *terms,
                   Py_ssize_t numbered) {
#define CUT_SHORT(end)                                                                  \
    if ((end) > n) {                                                                    \
        PyErr_SetString(PyExc_ValueError, "presearch: a rule key's layout is cut short"); \
        return -1;                                                                      \
    }
    if (at < 0) {
        PyErr_SetString(PyExc_ValueError, "presearch: a rule key is not laid out");
        return -1;
    }
    CUT_SHORT(at + 2);
    int32_t key = flat[at];
    if (key < 0 || key >= keys) {
        PyErr_SetString(PyExc_ValueError, "presearch: a rule key's number is out of range");
        return -1;
    }
    if (seen[key >> 3] & (1u << (key & 7))) return 0;
    seen[key >> 3] |= (unsigned char)(1u << (key & 7));
    Py_ssize_t alone = flat[at + 1], p = at + 2;
    if (alone < 0) alone = n; /* cut short below */
    CUT_SHORT(p + alone + 1);
    for (Py_ssize_t k = 0; k < alone; k++)
        if (add_id(ids, flat[p + k]) < 0) return -1;
    p += alone;
    Py_ssize_t end = p + 1 + flat[p];
    if (flat[p] < 0) end = n + 1;
    CUT_SHORT(end);
    for (p++; p < end;) {
        CUT_SHORT(p + 2);
        int32_t term = flat[p], count = flat[p + 1];
        if (count < 0) count = (int32_t)n;
        CUT_SHORT(p + 2 + count);
        if (p + 2 + count > end) {
            PyErr_SetString(PyExc_ValueError, "presearch: a rule key's layout is cut short");
            return -1;
        }
        int set = is_set(terms, numbered, term);
        if (set < 0) return -1;
        for (Py_ssize_t k = 0; set && k < count; k++)
            if (add_id(ids, flat[p + 2 + k]) < 0) return -1;
        p += 2 + count;
    }
#undef CUT_SHORT
    return 0;
}

static PyObject *sorted_list(PyObject *items) {
    PyObject *list = PySequence_List(items);
    if (list != NULL && PyList_Sort(list) < 0) Py_CLEAR(list);
    return list;
}

/* Whether rule `id` may match: checks[id] is None (nothing to check) or C ints side by side:
 * how many terms are needed, their numbers; how many clauses of several terms, and each
 * clause (how many terms, their numbers), one term of each needed: CompiledRule.may_match by
 * term number. */
static int may_match(PyObject *checks, Py_ssize_t i, const unsigned char *bits, Py_ssize_t size) {
    if (i < 0 || i >= PyList_GET_SIZE(checks)) {
        PyErr_SetString(PyExc_IndexError, "presearch: a rule without its checks");
        return -1;
    }
    PyObject *check = PyList_GET_ITEM(checks, i);
    if (check == Py_None) return 1;
    if (!PyBytes_Check(check) || PyBytes_GET_SIZE(check) % sizeof(int)) {
        PyErr_SetString(PyExc_TypeError, "presearch: a check is C ints");
        return -1;
    }
    const int *number = (const int *)PyBytes_AS_STRING(check);
    Py_ssize_t n = PyBytes_GET_SIZE(check) / (Py_ssize_t)sizeof(int), at = 0;
#define NEED(k)                                                                   \
    if (at + (k) > n) {                                                           \
        PyErr_SetString(PyExc_ValueError, "presearch: a check is cut short"); \
        return -1;                                                                \
    }
    NEED(1);
    Py_ssize_t required = number[at++];
    NEED(required);
    for (Py_ssize_t k = 0; k < required; k++) {
        int set = is_set(bits, size, number[at++]);
        if (set <= 0) return set;
    }
    NEED(1);
    Py_ssize_t clauses = number[at++];
    for (Py_ssize_t c = 0; c < clauses; c++) {
        NEED(1);
        Py_ssize_t terms = number[at++];
        NEED(terms);
        int any = 0;
        for (Py_ssize_t k = 0; k < terms; k++) {
            int set = is_set(bits, size, number[at++]);
            if (set < 0) return -1;
            any |= set;
        }
        if (!any) return 0;
    }
#undef NEED
    return 1;
}

/* presearch(meanings, rules_always, entities_always, numbered, checks, compiled, layout, keys)
 *     -> (rule ids, entity ids)
 * `meanings`: a list of index._Meaning tuples: (rule keys, entity keys (_Filed objects), terms,
 * term numbers, forms, pair ends, rule keys' places), the numbers and places C ints side by
 * side; `numbered`: how many terms the index numbers; `layout`: the rule keys' items, `keys`
 * how many keys (index._KeyIndex.seal). rule ids: sorted, those of `rules_always` and those
 * filed under a rule key alone or by a second term the article has; when `checks` is a list
 * (see may_match), only those whose clauses the article's terms hold (`compiled`, the
 * compiled rules, is for the Python version, which checks them by their terms). entity ids:
 * sorted, those of `entities_always` and those filed under an entity key. Each key is read
 * once. */
static PyObject *presearch(PyObject *self, PyObject *args) {
    PyObject *meanings, *rules_always, *entities_always, *checks, *compiled, *layout;
    Py_ssize_t numbered, keys;
    if (!PyArg_ParseTuple(args, "O!O!O!nOOSn:presearch", &PyList_Type, &meanings, &PyList_Type,
                          &rules_always, &PyList_Type, &entities_always, &numbered, &checks,
                          &compiled, &layout, &keys))
        return NULL;
    if (numbered < 0 || numbered > INT_MAX || keys < 0 || keys > INT_MAX ||
        PyBytes_GET_SIZE(layout) % sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "presearch: numbered, keys or the layout is wrong");
        return NULL;
    }
    if (checks != Py_None && !PyList_Check(checks)) {
        PyErr_SetString(PyExc_TypeError, "presearch: checks must be a list or None");
        return NULL;
    }
    const int32_t *flat = (const int32_t *)PyBytes_AS_STRING(layout);
    Py_ssize_t flat_n = PyBytes_GET_SIZE(layout) / (Py_ssize_t)sizeof(int32_t);
    PyObject *result = NULL, *rule_ids = NULL, *entity_ids = NULL;
    /* held: a key's __hash__ or `alone` runs Python code, which may change the list */
    PyObject *snapshot = PyList_AsTuple(meanings);
    if (snapshot == NULL) return NULL;
    meanings = snapshot;
    Ids ids = {NULL, 0, 0};
    unsigned char *bits = PyMem_Calloc(numbered / 8 + 1, 1); /* the article's terms, by number */
    unsigned char *seen_keys = PyMem_Calloc(keys / 8 + 1, 1); /* rule keys read, by number */
    PyObject *entities = PySet_New(entities_always);
    PyObject *seen = PySet_New(NULL); /* entity keys read */
    if (bits == NULL || seen_keys == NULL) PyErr_NoMemory();
    if (!bits || !seen_keys || !entities || !seen) goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rules_always); i++) {
        long id = PyLong_AsLong(PyList_GET_ITEM(rules_always, i));
        if ((id == -1 && PyErr_Occurred()) || add_id(&ids, (int32_t)id) < 0) goto done;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(meanings);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *meaning = PyTuple_GET_ITEM(meanings, i), *its_ids;
        if (!PyTuple_Check(meaning) || PyTuple_GET_SIZE(meaning) < 7 ||
            !PyBytes_Check(its_ids = PyTuple_GET_ITEM(meaning, 3)) ||
            PyBytes_GET_SIZE(its_ids) % sizeof(int) ||
            !PyBytes_Check(PyTuple_GET_ITEM(meaning, 6)) ||
            PyBytes_GET_SIZE(PyTuple_GET_ITEM(meaning, 6)) % sizeof(int32_t)) {
            PyErr_SetString(PyExc_TypeError,
                            "presearch: a meaning is (rule keys, entity keys, terms, numbers, "
                            "forms, pair ends, rule keys' places)");
            goto done;
        }
        const int *number = (const int *)PyBytes_AS_STRING(its_ids);
        for (Py_ssize_t j = 0; j < PyBytes_GET_SIZE(its_ids) / (Py_ssize_t)sizeof(int); j++) {
            int at = number[j];
            if (at < 0 || at >= numbered) {
                PyErr_SetString(PyExc_ValueError, "presearch: a term's number is out of range");
                goto done;
            }
            bits[at >> 3] |= (unsigned char)(1u << (at & 7));
        }
    }
    /* Second terms are tested against all the article's terms: collected first. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *meaning = PyTuple_GET_ITEM(meanings, i);
        PyObject *places = PyTuple_GET_ITEM(meaning, 6), *entity_keys = PyTuple_GET_ITEM(meaning, 1);
        const int32_t *at = (const int32_t *)PyBytes_AS_STRING(places);
        for (Py_ssize_t j = 0; j < PyBytes_GET_SIZE(places) / (Py_ssize_t)sizeof(int32_t); j++)
            if (add_key(&ids, flat, flat_n, at[j], seen_keys, keys, bits, numbered) < 0)
                goto done;
        if (!PyTuple_Check(entity_keys)) {
            PyErr_SetString(PyExc_TypeError, "presearch: a meaning's entity keys are a tuple");
            goto done;
        }
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(entity_keys); j++) {
            PyObject *filed = PyTuple_GET_ITEM(entity_keys, j);
            Py_ssize_t before = PySet_GET_SIZE(seen);
            if (PySet_Add(seen, filed) < 0) goto done;
            if (PySet_GET_SIZE(seen) == before) continue; /* read already */
            if (add_filed(entities, filed) < 0) goto done;
        }
    }
    /* In order, each once, and (with checks) only those whose clauses the terms hold. */
    if (ids.count) qsort(ids.id, (size_t)ids.count, sizeof(int32_t), by_id);
    if ((rule_ids = PyList_New(0)) == NULL) goto done;
    for (Py_ssize_t i = 0; i < ids.count; i++) {
        if (i && ids.id[i] == ids.id[i - 1]) continue;
        if (checks != Py_None) {
            int ok = may_match(checks, ids.id[i], bits, numbered);
            if (ok < 0) goto done;
            if (!ok) continue;
        }
        PyObject *id = PyLong_FromLong(ids.id[i]);
        int failed = id == NULL || PyList_Append(rule_ids, id) < 0;
        Py_XDECREF(id);
        if (failed) goto done;
    }
    entity_ids = sorted_list(entities);
    if (entity_ids != NULL) result = PyTuple_Pack(2, rule_ids, entity_ids);
done:
    PyMem_Free(bits);
    PyMem_Free(seen_keys);
    PyMem_Free(ids.id);
    Py_XDECREF(entities);
    Py_XDECREF(seen);
    Py_XDECREF(rule_ids);
    Py_XDECREF(entity_ids);
    Py_DECREF(snapshot);
    return result;
}

static PyObject *ARRAY; /* array.array */

/* token_starts(words) -> offsets where a character other than a space follows a space or
 * starts the text (text.token_starts), as an array of C ints: a list made an int object for
 * each of a field's 700 tokens, of which evidence reads a few (16 us an article at 10,000
 * rules, a tenth of what matching adds to tokenising). */
static PyObject *token_starts(PyObject *self, PyObject *words) {
    if (!PyUnicode_Check(words)) {
        PyErr_SetString(PyExc_TypeError, "token_starts: a str is expected");
        return NULL;
    }
    int kind = PyUnicode_KIND(words);
    const void *data = PyUnicode_DATA(words);
    Py_ssize_t n = PyUnicode_GET_LENGTH(words), k = 0;
    if (n > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "token_starts: the text is too long");
        return NULL;
    }
    int *at = PyMem_Malloc((size_t)(n / 2 + 1) * sizeof(int)); /* a token and a space each */
    if (at == NULL) return PyErr_NoMemory();
    if (kind == PyUnicode_1BYTE_KIND) { /* most texts: a byte a character */
        const unsigned char *c = data;
        Py_ssize_t i = 0;
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* 8 at a time: bit 7 of each byte set where it is not a space (exactly: no carry
         * crosses bytes), a start where the byte before is a space. */
        const uint64_t low7 = 0x7f7f7f7f7f7f7f7fULL, high = 0x8080808080808080ULL;
        uint64_t before = 0; /* the byte before the first: a space, as it were */
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, c + i, 8);
            uint64_t x = w ^ 0x2020202020202020ULL; /* 0 where a space */
            uint64_t word = (((x & low7) + low7) | x) & high;
            uint64_t starts = word & ~((word << 8) | (before >> 56));
            before = word;
            while (starts) {
                at[k++] = (int)(i + (__builtin_ctzll(starts) >> 3));
                starts &= starts - 1;
            }
        }
#endif
        for (; i < n; i++)
            if (c[i] != ' ' && (i == 0 || c[i - 1] == ' ')) at[k++] = (int)i;
    } else {
        Py_UCS4 before = ' ';
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c != ' ' && before == ' ') at[k++] = (int)i;
            before = c;
        }
    }
    PyObject *out = PyObject_CallFunction(ARRAY, "sy#", "i", (const char *)at,
                                          (Py_ssize_t)(k * (Py_ssize_t)sizeof(int)));
    PyMem_Free(at);
    return out;
}

/* meanings_of(words, meaning, found_words) -> (meanings, new words)
 * meanings: meaning[word] for each word that has one other than None (a word seen that means
 * nothing), its word appended to the list `found_words`; new words: those not in `meaning`.
 * One lookup a word. */
static PyObject *meanings_of(PyObject *self, PyObject *args) {
    PyObject *words, *meaning, *found_words;
    if (!PyArg_ParseTuple(args, "OO!O!:meanings_of", &words, &PyDict_Type, &meaning, &PyList_Type,
                          &found_words))
        return NULL;
    PyObject *iterator = PyObject_GetIter(words);
    if (iterator == NULL) return NULL;
    PyObject *found = PyList_New(0), *new = PyList_New(0), *word, *result = NULL;
    if (found == NULL || new == NULL) goto done;
    while ((word = PyIter_Next(iterator)) != NULL) {
        PyObject *its = PyDict_GetItemWithError(meaning, word);
        int failed;
        if (its != NULL) {
            failed = its != Py_None &&
                     (PyList_Append(found, its) < 0 || PyList_Append(found_words, word) < 0);
        } else {
            failed = PyErr_Occurred() || PyList_Append(new, word) < 0;
        }
        Py_DECREF(word);
        if (failed) goto done;
    }
    if (!PyErr_Occurred()) result = PyTuple_Pack(2, found, new);
done:
    Py_DECREF(iterator);
    Py_XDECREF(found);
    Py_XDECREF(new);
    return result;
}

/* form_table(meanings) -> bytes: for each form number a meaning names (its fifth item, C ints
 * side by side), the positions of the meanings that name it, as words_of_form reads them. C
 * ints: how many bits a bucket number has; the first entry of each bucket (-1: none); then
 * each entry, (form, position of the meaning, next entry in the bucket or -1). Buckets are
 * chained from the last meaning back, so each form's meanings come in order. */
static uint32_t form_bucket(int32_t form, int32_t bits) {
    return ((uint32_t)form * 0x9E3779B1u) >> (32 - bits);
}

static PyObject *form_table(PyObject *self, PyObject *meanings) {
    if (!PyList_Check(meanings)) {
        PyErr_SetString(PyExc_TypeError, "form_table: a list of meanings is expected");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(meanings), pairs = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *meaning = PyList_GET_ITEM(meanings, i), *forms;
        if (!PyTuple_Check(meaning) || PyTuple_GET_SIZE(meaning) < 5 ||
            !PyBytes_Check(forms = PyTuple_GET_ITEM(meaning, 4)) ||
            PyBytes_GET_SIZE(forms) % sizeof(int32_t)) {
            PyErr_SetString(PyExc_TypeError, "form_table: a meaning's fifth item is C ints");
            return NULL;
        }
        pairs += PyBytes_GET_SIZE(forms) / (Py_ssize_t)sizeof(int32_t);
    }
    if (pairs > INT32_MAX / 8 || n > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "form_table: too many forms");
        return NULL;
    }
    int32_t bits = 3;
    while (((Py_ssize_t)1 << bits) < 2 * pairs) bits++;
    Py_ssize_t buckets = (Py_ssize_t)1 << bits;
    PyObject *out = PyBytes_FromStringAndSize(
        NULL, (1 + buckets + 3 * pairs) * (Py_ssize_t)sizeof(int32_t));
    if (out == NULL) return NULL;
    int32_t *table = (int32_t *)PyBytes_AS_STRING(out), *head = table + 1;
    int32_t *entry = head + buckets;
    table[0] = bits;
    memset(head, 0xff, (size_t)buckets * sizeof(int32_t));
    int32_t at = 0;
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        PyObject *forms = PyTuple_GET_ITEM(PyList_GET_ITEM(meanings, i), 4);
        const int32_t *number = (const int32_t *)PyBytes_AS_STRING(forms);
        Py_ssize_t k = PyBytes_GET_SIZE(forms) / (Py_ssize_t)sizeof(int32_t);
        for (Py_ssize_t j = 0; j < k && at < pairs; j++, at++) {
            uint32_t bucket = form_bucket(number[j], bits);
            entry[3 * at] = number[j];
            entry[3 * at + 1] = (int32_t)i;
            entry[3 * at + 2] = head[bucket];
            head[bucket] = at;
        }
    }
    return out;
}

/* The words (side by side with the meanings form_table read) of form `number`, appended to
 * `out`, in the meanings' order. */
static int add_words_of_form(PyObject *table, PyObject *words, long number, PyObject *out) {
    Py_ssize_t size = PyBytes_Check(table) ? PyBytes_GET_SIZE(table) / (Py_ssize_t)sizeof(int32_t)
                                           : 0;
    const int32_t *ints = size ? (const int32_t *)PyBytes_AS_STRING(table) : NULL;
    int32_t bits = ints ? ints[0] : 0;
    Py_ssize_t buckets = bits >= 3 && bits < 31 ? (Py_ssize_t)1 << bits : 0;
    Py_ssize_t entries = buckets ? (size - 1 - buckets) / 3 : -1;
    if (entries < 0 || (size - 1 - buckets) % 3 || !PyList_Check(words)) {
        PyErr_SetString(PyExc_TypeError, "words_of_form: a form_table and a list of words");
        return -1;
    }
    if (number < INT32_MIN || number > INT32_MAX) return 0;
    const int32_t *head = ints + 1, *entry = head + buckets;
    int32_t last = INT32_MAX;
    for (int32_t at = head[form_bucket((int32_t)number, bits)]; at >= 0; at = entry[3 * at + 2]) {
        if (at >= entries || at >= last) { /* chains go back: one that does not was not made here */
            PyErr_SetString(PyExc_ValueError, "words_of_form: not a form_table");
            return -1;
        }
        last = at;
        if (entry[3 * at] != number) continue;
        Py_ssize_t i = entry[3 * at + 1];
        if (i < 0 || i >= PyList_GET_SIZE(words)) {
            PyErr_SetString(PyExc_IndexError, "words_of_form: the words are not the meanings'");
            return -1;
        }
        if (PyList_Append(out, PyList_GET_ITEM(words, i)) < 0) return -1;
    }
    return 0;
}

/* words_of_form(table, words, number) -> the words whose meanings name form `number`. */
static PyObject *words_of_form(PyObject *self, PyObject *args) {
    PyObject *table, *words;
    long number;
    if (!PyArg_ParseTuple(args, "OOl:words_of_form", &table, &words, &number)) return NULL;
    PyObject *out = PyList_New(0);
    if (out != NULL && add_words_of_form(table, words, number, out) < 0) Py_CLEAR(out);
    return out;
}

#define SNIPPET_CHARS 240
#define BEFORE (SNIPPET_CHARS / 3) /* of a snippet, before the word it is placed around */
#define CANDIDATES 64              /* words a snippet may be placed around */
#define OPEN 0x27E6                /* ⟦ */
#define CLOSE 0x27E7               /* ⟧ */

typedef struct {
    PyObject *field, *term;
    Py_ssize_t start, end;
} Piece;

/* How many different terms, and how many pieces, the window from `from` (inclusive) to `to`
 * (exclusive) of the field's pieces `at[0..n)` (by offset) shows. */
static int window_shows(const Piece *pieces, const Py_ssize_t *at, Py_ssize_t n, Py_ssize_t from,
                        Py_ssize_t to, Py_ssize_t *terms, Py_ssize_t *count) {
    /* bisect_left over the field's offsets, as evidence.snippet_of does */
    Py_ssize_t low = 0, high = n;
    while (low < high) {
        Py_ssize_t mid = (low + high) / 2;
        if (pieces[at[mid]].start < from) low = mid + 1; else high = mid;
    }
    Py_ssize_t first = low;
    high = n;
    while (low < high) {
        Py_ssize_t mid = (low + high) / 2;
        if (pieces[at[mid]].start < to) low = mid + 1; else high = mid;
    }
    Py_ssize_t last = low, distinct = 0;
    for (Py_ssize_t i = first; i < last; i++) {
        PyObject *term = pieces[at[i]].term;
        int before = 0;
        for (Py_ssize_t j = first; j < i && !before; j++) {
            PyObject *other = pieces[at[j]].term;
            if (other == term) { before = 1; break; }
            int same = PyObject_RichCompareBool(other, term, Py_EQ);
            if (same < 0) return -1;
            before = same;
        }
        distinct += !before;
    }
    *terms = distinct;
    *count = last - first;
    return 0;
}

/* snippet(pool, texts) -> about 240 characters around the densest cluster of `pool`, matched
 * words in ⟦ ⟧: evidence.snippet_of's window, for `pool` (a non-empty list of Evidence in
 * reading order) and `texts` (field name -> text). */
static PyObject *snippet(PyObject *self, PyObject *args) {
    PyObject *pool, *texts;
    if (!PyArg_ParseTuple(args, "O!O!:snippet", &PyList_Type, &pool, &PyDict_Type, &texts))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(pool);
    if (n == 0) return PyUnicode_FromString("");
    Piece *pieces = PyMem_Calloc(n, sizeof(Piece));
    Py_ssize_t *at = PyMem_Calloc(n, sizeof(Py_ssize_t)); /* a field's pieces, by offset */
    Py_ssize_t *firsts = PyMem_Calloc(n, sizeof(Py_ssize_t));
    Py_UCS4 *out = NULL;
    PyObject *result = NULL;
    if (pieces == NULL || at == NULL || firsts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyList_GET_ITEM(pool, i);
        if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) < 5 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(e, 0))) {
            PyErr_SetString(PyExc_TypeError, "snippet: the pool holds Evidence");
            goto done;
        }
        pieces[i].field = PyTuple_GET_ITEM(e, 0);
        pieces[i].term = PyTuple_GET_ITEM(e, 4);
        pieces[i].start = PyLong_AsSsize_t(PyTuple_GET_ITEM(e, 1));
        pieces[i].end = PyLong_AsSsize_t(PyTuple_GET_ITEM(e, 2));
        if (PyErr_Occurred()) goto done;
        if (pieces[i].start < 0 || pieces[i].end < pieces[i].start ||
            pieces[i].start > PY_SSIZE_T_MAX / 2) {
            PyErr_SetString(PyExc_ValueError, "snippet: evidence must end after it starts");
            goto done;
        }
    }
    Py_ssize_t best = 0;
    if (n > 1) {
        /* Candidates: the first CANDIDATES pieces, then each term's first piece. */
        Py_ssize_t nfirsts = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            int seen = 0;
            for (Py_ssize_t j = 0; j < nfirsts && !seen; j++) {
                PyObject *other = pieces[firsts[j]].term;
                if (other == pieces[i].term) { seen = 1; break; }
                seen = PyObject_RichCompareBool(other, pieces[i].term, Py_EQ);
                if (seen < 0) goto done;
            }
            if (!seen) firsts[nfirsts++] = i;
        }
        Py_ssize_t most_terms = -1, most_count = -1, head = n < CANDIDATES ? n : CANDIDATES;
        for (Py_ssize_t c = 0; c < head + nfirsts; c++) {
            Py_ssize_t i = c < head ? c : firsts[c - head];
            /* the pieces of i's field, in pool order (by offset within a field) */
            Py_ssize_t m = 0;
            for (Py_ssize_t j = 0; j < n; j++) {
                int same = pieces[j].field == pieces[i].field ||
                           PyUnicode_Compare(pieces[j].field, pieces[i].field) == 0;
                if (PyErr_Occurred()) goto done;
                if (same) at[m++] = j;
            }
            Py_ssize_t terms, count;
            Py_ssize_t from = pieces[i].start - BEFORE;
            if (window_shows(pieces, at, m, from, from + SNIPPET_CHARS, &terms, &count) < 0)
                goto done;
            if (terms > most_terms || (terms == most_terms && count > most_count)) {
                best = i;
                most_terms = terms;
                most_count = count;
            }
        }
    }
    PyObject *text = PyDict_GetItemWithError(texts, pieces[best].field);
    if (text == NULL) {
        if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, pieces[best].field);
        goto done;
    }
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "snippet: texts must be str");
        goto done;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    /* evidence._window */
    Py_ssize_t start = pieces[best].start - BEFORE;
    if (start < 0) start = 0;
    Py_ssize_t end = start + SNIPPET_CHARS < length ? start + SNIPPET_CHARS : length;
    if (end - SNIPPET_CHARS < start) start = end - SNIPPET_CHARS;
    if (start < 0) start = 0;
    while (start > 0 && !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, start - 1))) start--;
    while (end < length && !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, end))) end++;
    /* The window, its pieces of the best field marked, marks of the text's own left out. */
    Py_ssize_t size = 2 + (end - start) + 2 * n, used = 0;
    out = PyMem_Malloc(size * sizeof(Py_UCS4));
    if (out == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t cursor = start;
    for (Py_ssize_t i = 0; i <= n; i++) {
        Py_ssize_t upto = end;
        if (i < n) {
            Piece *e = &pieces[i];
            int same = e->field == pieces[best].field ||
                       PyUnicode_Compare(e->field, pieces[best].field) == 0;
            if (PyErr_Occurred()) goto done;
            if (!same || e->start < cursor || e->end > end) continue;
            upto = e->start;
        }
        for (Py_ssize_t k = cursor; k < upto; k++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, k);
            if (c != OPEN && c != CLOSE) out[used++] = c;
        }
        if (i == n) break;
        out[used++] = OPEN;
        for (Py_ssize_t k = pieces[i].start; k < pieces[i].end; k++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, k);
            if (c != OPEN && c != CLOSE) out[used++] = c;
        }
        out[used++] = CLOSE;
        cursor = pieces[i].end;
    }
    /* evidence._ellipsed: one line, stripped, with … where the text goes on. */
    for (Py_ssize_t k = 0; k < used; k++)
        if (out[k] == '\n') out[k] = ' ';
    Py_ssize_t left = 0, right = used;
    while (left < right && Py_UNICODE_ISSPACE(out[left])) left++;
    while (right > left && Py_UNICODE_ISSPACE(out[right - 1])) right--;
    Py_UCS4 *line = PyMem_Malloc((right - left + 2) * sizeof(Py_UCS4));
    if (line == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t written = 0;
    if (start > 0) line[written++] = 0x2026;
    for (Py_ssize_t k = left; k < right; k++) line[written++] = out[k];
    if (end < length) line[written++] = 0x2026;
    result = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, line, written);
    PyMem_Free(line);
done:
    PyMem_Free(pieces);
    PyMem_Free(at);
    PyMem_Free(firsts);
    PyMem_Free(out);
    return result;
}

/* A hit's (place, evidence) from its field's locator: (rank, starts, written, tokens, text), as
 * evidence._locate makes it. NULL with no exception set where the locator is not as expected. */
static PyObject *place_hit(PyObject *hit, PyObject *locator, PyTypeObject *kind) {
    PyObject *rank, *starts, *written, *tokens, *text;
    if (!PyTuple_Check(locator) || PyTuple_GET_SIZE(locator) != 5) return NULL;
    rank = PyTuple_GET_ITEM(locator, 0);
    starts = PyTuple_GET_ITEM(locator, 1);
    written = PyTuple_GET_ITEM(locator, 2);
    tokens = PyTuple_GET_ITEM(locator, 3);
    text = PyTuple_GET_ITEM(locator, 4);
    if (!PyDict_Check(written) || !PyList_Check(tokens) || !PyUnicode_Check(text)) return NULL;
    Py_ssize_t first = PyLong_AsSsize_t(PyTuple_GET_ITEM(hit, 1));
    Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(hit, 2));
    if (PyErr_Occurred()) return NULL;
    Py_ssize_t n, char_start, last_start;
    if (PyList_Check(starts)) { /* as text.token_starts gives them */
        n = PyList_GET_SIZE(starts);
        if (first < 0 || end <= first || end > n || PyList_GET_SIZE(tokens) != n) return NULL;
        char_start = PyLong_AsSsize_t(PyList_GET_ITEM(starts, first));
        last_start = PyLong_AsSsize_t(PyList_GET_ITEM(starts, end - 1));
        if (PyErr_Occurred()) return NULL;
    } else { /* C ints, as token_starts above gives them */
        Py_buffer view;
        if (PyObject_GetBuffer(starts, &view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
            PyErr_Clear(); /* not C ints: placed by `locate` */
            return NULL;
        }
        int ints = view.itemsize == (Py_ssize_t)sizeof(int) && view.format != NULL &&
                   strcmp(view.format, "i") == 0;
        n = ints ? view.len / (Py_ssize_t)sizeof(int) : 0;
        int fits = ints && first >= 0 && end > first && end <= n && PyList_GET_SIZE(tokens) == n;
        if (fits) {
            char_start = ((const int *)view.buf)[first];
            last_start = ((const int *)view.buf)[end - 1];
        }
        PyBuffer_Release(&view);
        if (!fits) return NULL;
    }
    /* FieldText.written_length: as written (a ligature, an acronym's periods), else the token */
    Py_ssize_t length = 0;
    if (PyDict_GET_SIZE(written)) {
        PyObject *key = PyLong_FromSsize_t(end - 1);
        if (key == NULL) return NULL;
        PyObject *value = PyDict_GetItemWithError(written, key);
        Py_DECREF(key);
        if (value == NULL && PyErr_Occurred()) return NULL;
        if (value != NULL) {
            length = PyLong_AsSsize_t(value);
            if (length == -1 && PyErr_Occurred()) return NULL;
        }
    }
    if (length == 0) {
        if (end > PyList_GET_SIZE(tokens)) return NULL; /* changed by the lookup: locate it */
        PyObject *token = PyList_GET_ITEM(tokens, end - 1);
        if (!PyUnicode_Check(token)) return NULL;
        length = PyUnicode_GET_LENGTH(token);
    }
    Py_ssize_t char_end = last_start + length;
    PyObject *words = PyUnicode_Substring(text, char_start, char_end);
    PyObject *start_at = PyLong_FromSsize_t(char_start), *end_at = PyLong_FromSsize_t(char_end);
    /* An Evidence (a NamedTuple: a tuple subclass without a dict) filled as tuple.__new__ does;
     * from 3.14 a tuple caches its hash, which only tuple.__new__ knows to start, so there it is
     * made by calling its type. */
#if PY_VERSION_HEX >= 0x030E0000
    PyObject *evidence = NULL;
    if (words && start_at && end_at)
        evidence = PyObject_CallFunctionObjArgs((PyObject *)kind, PyTuple_GET_ITEM(hit, 0),
                                                start_at, end_at, words, PyTuple_GET_ITEM(hit, 3),
                                                PyTuple_GET_ITEM(hit, 4), NULL);
#else
    PyObject *evidence = kind->tp_alloc(kind, 6);
#endif
    PyObject *place = PyTuple_Pack(3, rank, PyTuple_GET_ITEM(hit, 1), PyTuple_GET_ITEM(hit, 2));
    PyObject *result = NULL;
    if (words && start_at && end_at && evidence && place) {
#if PY_VERSION_HEX < 0x030E0000
        PyObject *items[6] = {PyTuple_GET_ITEM(hit, 0), start_at, end_at, words,
                              PyTuple_GET_ITEM(hit, 3), PyTuple_GET_ITEM(hit, 4)};
        for (int i = 0; i < 6; i++) {
            Py_INCREF(items[i]);
            PyTuple_SET_ITEM(evidence, i, items[i]);
        }
#endif
        result = PyTuple_Pack(2, place, evidence);
    }
    Py_XDECREF(words);
    Py_XDECREF(start_at);
    Py_XDECREF(end_at);
    Py_XDECREF(evidence);
    Py_XDECREF(place);
    return result;
}

typedef struct {
    Py_ssize_t rank, start, end; /* the hit's place in reading order */
    Py_ssize_t index;            /* in the hits: the first of equal places wins */
    PyObject *evidence;          /* held in `owned` (see evidence_of) */
} Placed;

static int by_place(const void *a, const void *b) {
    const Placed *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* evidence_of(hits, made, locate, doc, locators, kind) -> tuple of Evidence
 * evidence.evidence_of: each hit's (place, evidence) from the memo `made`, else made from its
 * field's locator in `locators` (field -> (rank, starts, written, tokens, text)) as an instance
 * of `kind` (records.Evidence), else by locate(hit, doc); remembered in `made`. The evidence of
 * distinct places, in reading order, the first hit's where several share a place. A place is
 * (field rank, first token, end token). */
static PyObject *evidence_of(PyObject *self, PyObject *args) {
    PyObject *hits, *made, *locate, *doc, *locators;
    PyTypeObject *kind;
    if (!PyArg_ParseTuple(args, "O!O!OOO!O!:evidence_of", &PyList_Type, &hits, &PyDict_Type, &made,
                          &locate, &doc, &PyDict_Type, &locators, &PyType_Type, &kind))
        return NULL;
    if (!PyType_IsSubtype(kind, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "evidence_of: kind must be a tuple type");
        return NULL;
    }
    /* The hits as they are now, and a reference to each evidence: `locate` runs Python code,
     * which may change the list or the memo (the only other holders). */
    PyObject *held = PySequence_Tuple(hits);
    if (held == NULL) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(held), owning = 0;
    Placed *placed = PyMem_Malloc((n ? n : 1) * sizeof(Placed));
    PyObject **owned = PyMem_Malloc((n ? n : 1) * sizeof(PyObject *));
    PyObject *result = NULL;
    if (placed == NULL || owned == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *hit = PyTuple_GET_ITEM(held, i);
        PyObject *found = PyDict_GetItemWithError(made, hit), *made_now = NULL;
        if (found != NULL) { /* held: reading its place may run Python code (__index__) */
            Py_INCREF(found);
        } else {
            if (PyErr_Occurred()) goto done;
            if (PyTuple_Check(hit) && PyTuple_GET_SIZE(hit) == 5) {
                PyObject *locator = PyDict_GetItemWithError(locators, PyTuple_GET_ITEM(hit, 0));
                if (locator != NULL) {
                    Py_INCREF(locator); /* place_hit may run Python code that drops it */
                    made_now = place_hit(hit, locator, kind);
                    Py_DECREF(locator);
                }
                if (PyErr_Occurred()) goto done;
            }
            if (made_now == NULL) made_now = PyObject_CallFunctionObjArgs(locate, hit, doc, NULL);
            if (made_now == NULL) goto done;
            if (PyDict_SetItem(made, hit, made_now) < 0) {
                Py_DECREF(made_now);
                goto done;
            }
            found = made_now; /* held: our reference */
        }
        PyObject *place;
        if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2 ||
            !PyTuple_Check(place = PyTuple_GET_ITEM(found, 0)) || PyTuple_GET_SIZE(place) != 3) {
            PyErr_SetString(PyExc_TypeError,
                            "evidence_of: locate gives ((rank, start, end), evidence)");
            Py_DECREF(found);
            goto done;
        }
        placed[i].rank = PyLong_AsSsize_t(PyTuple_GET_ITEM(place, 0));
        placed[i].start = PyLong_AsSsize_t(PyTuple_GET_ITEM(place, 1));
        placed[i].end = PyLong_AsSsize_t(PyTuple_GET_ITEM(place, 2));
        placed[i].index = i;
        placed[i].evidence = owned[owning++] = PyTuple_GET_ITEM(found, 1);
        Py_INCREF(placed[i].evidence);
        Py_DECREF(found);
        if (PyErr_Occurred()) goto done;
    }
    qsort(placed, n, sizeof(Placed), by_place);
    Py_ssize_t distinct = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Placed *last = distinct ? &placed[distinct - 1] : NULL;
        if (last && last->rank == placed[i].rank && last->start == placed[i].start &&
            last->end == placed[i].end)
            continue; /* the same words: the first hit's label */
        placed[distinct++] = placed[i];
    }
    result = PyTuple_New(distinct);
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < distinct; i++) {
        Py_INCREF(placed[i].evidence);
        PyTuple_SET_ITEM(result, i, placed[i].evidence);
    }
done:
    for (Py_ssize_t i = 0; i < owning; i++) Py_DECREF(owned[i]);
    PyMem_Free(owned);
    PyMem_Free(placed);
    Py_DECREF(held);
    return result;
}

/* score_of(evidence) -> float: evidence.score_of (title 3, summary 2, any other field 1, each
 * evidence counted unless it starts inside words of its field counted already). */
static PyObject *score_of(PyObject *self, PyObject *evidence) {
    if (!PyTuple_Check(evidence)) {
        PyErr_SetString(PyExc_TypeError, "score_of: a tuple of Evidence is expected");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(evidence), fields = 0;
    struct Reach { PyObject *field; Py_ssize_t end; } *reach;
    reach = PyMem_Malloc((n ? n : 1) * sizeof(struct Reach)); /* how far each field is counted */
    if (reach == NULL) return PyErr_NoMemory();
    double total = 0.0;
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyTuple_GET_ITEM(evidence, i);
        if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) < 3 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(e, 0))) {
            PyErr_SetString(PyExc_TypeError, "score_of: a tuple of Evidence is expected");
            goto done;
        }
        PyObject *field = PyTuple_GET_ITEM(e, 0);
        Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(e, 1));
        Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(e, 2));
        if (PyErr_Occurred()) goto done;
        Py_ssize_t f = 0;
        while (f < fields && reach[f].field != field &&
               PyUnicode_Compare(reach[f].field, field) != 0)
            f++;
        if (PyErr_Occurred()) goto done;
        if (f == fields) {
            reach[fields].field = field;
            reach[fields].end = end;
            fields++;
        } else {
            int inside = start < reach[f].end;
            if (end > reach[f].end) reach[f].end = end;
            if (inside) continue; /* words of its field counted already */
        }
        total += PyUnicode_CompareWithASCIIString(field, "title") == 0     ? 3.0
                 : PyUnicode_CompareWithASCIIString(field, "summary") == 0 ? 2.0
                                                                            : 1.0;
    }
    result = PyFloat_FromDouble(total);
done:
    PyMem_Free(reach);
    return result;
}

/* near_pairs(lefts, rights, distance, ordered) -> {hit: None} of the hits of either side that
 * have a partner on the other in the same field within `distance` words (after the left one
 * only, when `ordered`), each left one tried with every right one, in that order: as
 * nodes.Near._pairs_tried. A hit is (field, first token, end token, label, entity). */
static PyObject *near_used(PyObject *lefts, PyObject *rights, Py_ssize_t distance, int ordered) {
    /* held: comparing fields or hashing hits may run Python code that empties the lists */
    PyObject *ls = PyList_AsTuple(lefts), *rs = ls ? PyList_AsTuple(rights) : NULL;
    if (rs == NULL) {
        Py_XDECREF(ls);
        return NULL;
    }
    Py_ssize_t nl = PyTuple_GET_SIZE(ls), nr = PyTuple_GET_SIZE(rs);
    struct Span { PyObject *hit, *field; Py_ssize_t start, end; } *spans;
    spans = PyMem_Malloc((nl + nr ? nl + nr : 1) * sizeof(struct Span));
    PyObject *used = NULL;
    if (spans == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nl + nr; i++) {
        PyObject *hit = i < nl ? PyTuple_GET_ITEM(ls, i) : PyTuple_GET_ITEM(rs, i - nl);
        if (!PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) < 3) {
            PyErr_SetString(PyExc_TypeError, "near_pairs: a hit is (field, start, end, ...)");
            goto done;
        }
        spans[i].hit = hit;
        spans[i].field = PyTuple_GET_ITEM(hit, 0);
        spans[i].start = PyLong_AsSsize_t(PyTuple_GET_ITEM(hit, 1));
        spans[i].end = PyLong_AsSsize_t(PyTuple_GET_ITEM(hit, 2));
        if (PyErr_Occurred()) goto done;
    }
    used = PyDict_New();
    if (used == NULL) goto done;
    for (Py_ssize_t i = 0; i < nl; i++) {
        struct Span *l = &spans[i];
        for (Py_ssize_t j = nl; j < nl + nr; j++) {
            struct Span *r = &spans[j];
            if (l->field != r->field) {
                int same = PyObject_RichCompareBool(l->field, r->field, Py_EQ);
                if (same < 0) goto fail;
                if (!same) continue;
            }
            Py_ssize_t gap;
            if (r->start >= l->end)
                gap = r->start - l->end + 1;
            else if (l->start >= r->end && !ordered)
                gap = l->start - r->end + 1;
            else
                continue; /* the same words on both sides, or the wrong order */
            if (gap <= distance) {
                if (PyDict_SetItem(used, l->hit, Py_None) < 0) goto fail;
                if (PyDict_SetItem(used, r->hit, Py_None) < 0) goto fail;
            }
        }
    }
    goto done;
fail:
    Py_CLEAR(used);
done:
    PyMem_Free(spans);
    Py_DECREF(ls);
    Py_DECREF(rs);
    return used;
}

static PyObject *near_pairs(PyObject *self, PyObject *args) {
    PyObject *lefts, *rights;
    Py_ssize_t distance;
    int ordered;
    if (!PyArg_ParseTuple(args, "O!O!np:near_pairs", &PyList_Type, &lefts, &PyList_Type, &rights,
                          &distance, &ordered))
        return NULL;
    return near_used(lefts, rights, distance, ordered);
}

static PyMethodDef methods[] = {
    {"token_hashes", token_hashes, METH_O, "The tokens' hashes, side by side."},
    {"positions_of", positions_of, METH_VARARGS, "Positions of any of some words among tokens."},
    {"evidence_of", evidence_of, METH_VARARGS, "A match's evidence, in reading order."},
    {"score_of", score_of, METH_O, "A match's score."},
    {"near_pairs", near_pairs, METH_VARARGS, "The hits of a NEAR's sides that pair."},
    {"snippet", snippet, METH_VARARGS, "A snippet around the densest evidence."},
    {"leaf_hits", leaf_hits, METH_VARARGS, "Hits of some words in some fields."},
    {"pairs_of", pairs_of, METH_VARARGS, "Values of adjacent token pairs, added to a set."},
    {"presearch", presearch, METH_VARARGS, "Terms and candidate ids of an article's meanings."},
    {"token_starts", token_starts, METH_O, "Offsets of the tokens of a word_text."},
    {"seq_hits", seq_hits, METH_VARARGS, "A leaf's hits in a document, remembered."},
    {"node_hits", node_hits, METH_VARARGS, "A node's hits in a document, its children's too."},
    {"hits_of", hits_of, METH_VARARGS, "Each node's hits in a document."},
    {"form_table", form_table, METH_O, "An article's words of each form, found by number."},
    {"words_of_form", words_of_form, METH_VARARGS, "The words of a form in a form_table."},
    {"meanings_of", meanings_of, METH_VARARGS, "Meanings of known words, and the new words."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "monitor.rules._native",
    "The matcher's per-article loops in C (see monitor/rules/native.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

/* What native.py expects (native.INTERFACE): raised with any change to a function's arguments
 * or to the data it reads, so that a build left from older sources is not used. */
#define INTERFACE 7

PyMODINIT_FUNC PyInit__native(void) {
    ALONE = PyUnicode_InternFromString("alone");
    PyObject *array_module = PyImport_ImportModule("array");
    if (array_module == NULL) return NULL;
    ARRAY = PyObject_GetAttrString(array_module, "array");
    Py_DECREF(array_module);
    if (ARRAY == NULL) return NULL;
    MEMO = PyUnicode_InternFromString("memo");
    WORDS = PyUnicode_InternFromString("words");
    SCANS_CACHE = PyUnicode_InternFromString("_scans");
    SCANS = PyUnicode_InternFromString("scans");
    FORM_IDS = PyUnicode_InternFromString("form_ids");
    FORM_WORDS = PyUnicode_InternFromString("form_words");
    FORMS = PyUnicode_InternFromString("forms");
    LANGUAGES = PyUnicode_InternFromString("languages");
    SPEC = PyUnicode_InternFromString("spec");
    WORDS_OF = PyUnicode_InternFromString("words_of");
    HITS = PyUnicode_InternFromString("hits");
    if (!ALONE || !MEMO || !WORDS || !SCANS_CACHE || !SCANS || !FORM_IDS || !FORMS ||
        !FORM_WORDS || !LANGUAGES || !SPEC || !WORDS_OF || !HITS)
        return NULL;
    PyObject *names[D_COUNT] = {MEMO, WORDS, SCANS_CACHE, FORM_IDS, FORMS, FORM_WORDS, LANGUAGES};
    for (int i = 0; i < D_COUNT; i++) DOC_ATTRS[i] = names[i];
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "INTERFACE", INTERFACE) < 0) Py_CLEAR(m);
    return m;
}
