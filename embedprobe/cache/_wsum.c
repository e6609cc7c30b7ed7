/* The row digests of digest.py (scheme wsum64-v1), compiled: sum_j word_j * K_j mod 2**64 over
 * each row's 64-bit little-endian words. Unsigned arithmetic wraps mod 2**64 in C, and a sum
 * mod 2**64 does not depend on its order, so every variant below gives exactly numpy's einsum
 * result; the x86 variants differ only in the instructions the compiler may use (AVX-512's
 * 64-bit multiply, AVX2), picked at import from what the CPU reports.
 *
 * wsum_rows(src, K, out): digests of the rows of a 2-D buffer (rows of whole 64-bit words).
 * wsum_rows_f16_to_f32(src, K, out, dst): the same for a C-contiguous float16 buffer, and its
 *     values converted to float32 into dst in the same pass (each 64 bytes loaded once: the
 *     hashing then costs next to nothing beside the conversion). x86 with AVX2 and F16C only
 *     (HAS_F16C); signalling NaNs come out quiet, as from torch's conversion (VCVTPH2PS).
 * The GIL is released while they run. Built as an optional extension (setup.py): without a
 * compiler, digest.py computes the same digests with numpy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define WSUM_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define WSUM_X86 0
#endif

#define WSUM_LOOP                                                                      \
    for (Py_ssize_t i = 0; i < n; i++) {                                              \
        const uint64_t *r = (const uint64_t *)(src + i * stride);                     \
        uint64_t acc = 0;                                                             \
        for (Py_ssize_t j = 0; j < m; j++) acc += r[j] * K[j];                        \
        out[i] = acc;                                                                 \
    }

typedef void (*wsum_fn)(const char *, Py_ssize_t, Py_ssize_t, Py_ssize_t, const uint64_t *,
                        uint64_t *);

static void wsum_generic(const char *src, Py_ssize_t n, Py_ssize_t m, Py_ssize_t stride,
                         const uint64_t *K, uint64_t *out) {
    WSUM_LOOP
}

#if WSUM_X86
__attribute__((target("avx2"))) static void wsum_avx2(const char *src, Py_ssize_t n,
                                                      Py_ssize_t m, Py_ssize_t stride,
                                                      const uint64_t *K, uint64_t *out) {
    WSUM_LOOP
}

__attribute__((target("avx512f,avx512dq"))) static void wsum_avx512(
    const char *src, Py_ssize_t n, Py_ssize_t m, Py_ssize_t stride, const uint64_t *K,
    uint64_t *out) {
    WSUM_LOOP
}

/* The fused kernels: each row's words are loaded once, multiplied into the digest and their
 * float16 values converted to float32 (VCVTPH2PS) from the same register. The conversion's
 * stores are the bottleneck, so the hashing costs next to nothing. */
__attribute__((target("avx512f,avx512dq,f16c"))) static void fused_avx512(
    const uint16_t *src, Py_ssize_t n, Py_ssize_t m, const uint64_t *K, uint64_t *out,
    float *dst) {
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint16_t *h = src + i * m * 4;
        float *d = dst + i * m * 4;
        __m512i acc = _mm512_setzero_si512();
        Py_ssize_t w = 0;
        for (; w + 8 <= m; w += 8) {
            __m512i v = _mm512_loadu_si512((const void *)(h + 4 * w));
            acc = _mm512_add_epi64(
                acc, _mm512_mullo_epi64(v, _mm512_loadu_si512((const void *)(K + w))));
            _mm512_storeu_ps(d + 4 * w, _mm512_cvtph_ps(_mm512_castsi512_si256(v)));
            _mm512_storeu_ps(d + 4 * w + 16, _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1)));
        }
        if (w < m) { /* the last 1-7 words, masked */
            const int r = (int)(m - w);
            const __mmask8 mw = (__mmask8)((1u << r) - 1);
            __m512i v = _mm512_maskz_loadu_epi64(mw, (const void *)(h + 4 * w));
            acc = _mm512_add_epi64(
                acc, _mm512_mullo_epi64(v, _mm512_maskz_loadu_epi64(mw, (const void *)(K + w))));
            const int halves = 4 * r;
            const __mmask16 lo = (__mmask16)(halves >= 16 ? 0xFFFFu : (1u << halves) - 1);
            const __mmask16 hi = (__mmask16)(halves > 16 ? (1u << (halves - 16)) - 1 : 0u);
            _mm512_mask_storeu_ps(d + 4 * w, lo, _mm512_cvtph_ps(_mm512_castsi512_si256(v)));
            if (hi)
                _mm512_mask_storeu_ps(d + 4 * w + 16, hi,
                                      _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1)));
        }
        uint64_t lanes[8], sum = 0; /* summed unsigned: wraps mod 2**64 without UB */
        _mm512_storeu_si512((void *)lanes, acc);
        for (int q = 0; q < 8; q++) sum += lanes[q];
        out[i] = sum;
    }
}

/* a * b mod 2**64 per 64-bit lane, from AVX2's 32 x 32 -> 64 multiplies */
__attribute__((target("avx2"))) static inline __m256i mullo64_avx2(__m256i a, __m256i b) {
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b),
                                     _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
    return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

__attribute__((target("avx2,f16c"))) static void fused_avx2(const uint16_t *src, Py_ssize_t n,
                                                          Py_ssize_t m, const uint64_t *K,
                                                          uint64_t *out, float *dst) {
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint16_t *h = src + i * m * 4;
        float *d = dst + i * m * 4;
        __m256i acc = _mm256_setzero_si256();
        Py_ssize_t w = 0;
        for (; w + 4 <= m; w += 4) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(h + 4 * w));
            acc = _mm256_add_epi64(
                acc, mullo64_avx2(v, _mm256_loadu_si256((const __m256i *)(K + w))));
            _mm256_storeu_ps(d + 4 * w, _mm256_cvtph_ps(_mm256_castsi256_si128(v)));
            _mm256_storeu_ps(d + 4 * w + 8, _mm256_cvtph_ps(_mm256_extracti128_si256(v, 1)));
        }
        uint64_t lanes[4];
        _mm256_storeu_si256((__m256i *)lanes, acc);
        uint64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
        for (; w < m; w++) { /* the last 1-3 words */
            uint64_t word;
            memcpy(&word, h + 4 * w, 8);
            sum += word * K[w];
            _mm_storeu_ps(d + 4 * w, _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(h + 4 * w))));
        }
        out[i] = sum;
    }
}
#endif

static wsum_fn wsum_best = wsum_generic; /* the variant in use (set_variant) */
typedef void (*fused_fn)(const uint16_t *, Py_ssize_t, Py_ssize_t, const uint64_t *, uint64_t *,
                         float *);
static fused_fn fused_best = NULL; /* NULL: no fused conversion on this CPU */

/* the parts of a 2-D buffer of rows of whole, aligned 64-bit words; -1 with an error set if not */
static int rows_of_words(Py_buffer *b, Py_ssize_t *n, Py_ssize_t *m, Py_ssize_t *stride) {
    /* a stride of an axis of length 1 is never used (numpy may set it to anything) */
    if (b->ndim != 2 || b->strides == NULL || (b->shape[1] > 1 && b->strides[1] != b->itemsize) ||
        (b->shape[1] * b->itemsize) % 8 || ((uintptr_t)b->buf) % 8 ||
        (b->shape[0] > 1 && (b->strides[0] % 8 || b->strides[0] < b->shape[1] * b->itemsize))) {
        PyErr_SetString(PyExc_ValueError,
                        "wsum: src must be 2-D, rows contiguous, of whole aligned 64-bit words");
        return -1;
    }
    *n = b->shape[0];
    *m = b->shape[1] * b->itemsize / 8;
    *stride = b->strides[0];
    return 0;
}

static int check_k_out(Py_buffer *k, Py_buffer *o, Py_ssize_t n, Py_ssize_t m) {
    if (k->len != m * 8 || k->itemsize != 8 || ((uintptr_t)k->buf) % 8) {
        PyErr_SetString(PyExc_ValueError, "wsum: K must hold one uint64 per word of a row");
        return -1;
    }
    if (o->len != n * 8 || o->itemsize != 8 || ((uintptr_t)o->buf) % 8) {
        PyErr_SetString(PyExc_ValueError, "wsum: out must hold one uint64 per row");
        return -1;
    }
    return 0;
}

/* src with its shape and strides, K read-only, out (and dst) writable; all or none held */
static int get_buffers(PyObject *src, PyObject *k, PyObject *out, PyObject *dst, Py_buffer *s,
                       Py_buffer *kb, Py_buffer *ob, Py_buffer *db) {
    if (PyObject_GetBuffer(src, s, PyBUF_RECORDS_RO) < 0) return -1;
    if (PyObject_GetBuffer(k, kb, PyBUF_C_CONTIGUOUS) < 0) goto fail_s;
    if (PyObject_GetBuffer(out, ob, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) goto fail_k;
    if (dst != NULL && PyObject_GetBuffer(dst, db, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        goto fail_o;
    return 0;
fail_o:
    PyBuffer_Release(ob);
fail_k:
    PyBuffer_Release(kb);
fail_s:
    PyBuffer_Release(s);
    return -1;
}

static PyObject *py_wsum_rows(PyObject *self, PyObject *args) {
    PyObject *src, *kobj, *oobj;
    Py_buffer s, k, o;
    Py_ssize_t n, m, stride;
    if (!PyArg_ParseTuple(args, "OOO", &src, &kobj, &oobj)) return NULL;
    if (get_buffers(src, kobj, oobj, NULL, &s, &k, &o, NULL) < 0) return NULL;
    PyObject *res = NULL;
    if (rows_of_words(&s, &n, &m, &stride) == 0 && check_k_out(&k, &o, n, m) == 0) {
        wsum_fn fn = wsum_best; /* read with the GIL held: select() may change it meanwhile */
        Py_BEGIN_ALLOW_THREADS
        fn((const char *)s.buf, n, m, stride, (const uint64_t *)k.buf, (uint64_t *)o.buf);
        Py_END_ALLOW_THREADS
        res = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&s);
    PyBuffer_Release(&k);
    PyBuffer_Release(&o);
    return res;
}

static PyObject *py_wsum_rows_f16_to_f32(PyObject *self, PyObject *args) {
    PyObject *src, *kobj, *oobj, *dobj;
    Py_buffer s, k, o, d;
    Py_ssize_t n, m, stride;
    if (!PyArg_ParseTuple(args, "OOOO", &src, &kobj, &oobj, &dobj)) return NULL;
    if (get_buffers(src, kobj, oobj, dobj, &s, &k, &o, &d) < 0) return NULL;
    PyObject *res = NULL;
    fused_fn fn = fused_best; /* read with the GIL held: select() may change it meanwhile */
    const char *s0 = (const char *)s.buf, *d0 = (const char *)d.buf;
    if (fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "wsum: this CPU has no F16C conversion");
    } else if (rows_of_words(&s, &n, &m, &stride) == 0 && check_k_out(&k, &o, n, m) == 0) {
        if (s.itemsize != 2 || (n > 1 && stride != m * 8) || d.len != s.len * 2 ||
            ((uintptr_t)d.buf) % 4 || (s0 < d0 + d.len && d0 < s0 + s.len)) {
            PyErr_SetString(PyExc_ValueError, "wsum: src must be C-contiguous float16 and dst "
                                              "float32 of its size, apart from src");
        } else {
            Py_BEGIN_ALLOW_THREADS
            fn((const uint16_t *)s.buf, n, m, (const uint64_t *)k.buf, (uint64_t *)o.buf,
               (float *)d.buf);
            Py_END_ALLOW_THREADS
            res = Py_NewRef(Py_None);
        }
    }
    PyBuffer_Release(&s);
    PyBuffer_Release(&k);
    PyBuffer_Release(&o);
    PyBuffer_Release(&d);
    return res;
}

/* the variants this CPU can run, best first: (name, hash kernel, fused kernel or NULL) */
struct variant {
    const char *name;
    wsum_fn wsum;
    fused_fn fused;
};
static struct variant variants[3];
static int n_variants = 0;

/* F16C from CPUID (leaf 1, ECX bit 29): __builtin_cpu_supports("f16c") is missing from clang
 * before 18 and GCC before 11. Used only with AVX2, whose check covers the OS saving YMM state. */
static int has_f16c(void) {
#if WSUM_X86
    unsigned int a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
#else
    return 0;
#endif
}

static void find_variants(void) {
    n_variants = 0; /* the module may be initialised more than once (imported under two names) */
#if WSUM_X86
    __builtin_cpu_init();
    const int f16c = has_f16c();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        variants[n_variants++] = (struct variant){"avx512", wsum_avx512, f16c ? fused_avx512 : NULL};
    if (__builtin_cpu_supports("avx2"))
        variants[n_variants++] = (struct variant){"avx2", wsum_avx2, f16c ? fused_avx2 : NULL};
#endif
    variants[n_variants++] = (struct variant){"generic", wsum_generic, NULL};
}

static int set_variant(const struct variant *v, PyObject *mod) {
    wsum_best = v->wsum;
    fused_best = v->fused;
    PyObject *name = PyUnicode_FromString(v->name);
    if (name == NULL) return -1;
    int rc = PyObject_SetAttrString(mod, "KERNEL", name);
    Py_DECREF(name);
    if (rc < 0) return -1;
    return PyObject_SetAttrString(mod, "HAS_F16C", v->fused ? Py_True : Py_False);
}

static PyObject *py_variants(PyObject *self, PyObject *noargs) {
    PyObject *out = PyList_New(n_variants);
    if (out == NULL) return NULL;
    for (int i = 0; i < n_variants; i++) {
        PyObject *name = PyUnicode_FromString(variants[i].name);
        if (name == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, name);
    }
    return out;
}

static PyObject *py_select(PyObject *self, PyObject *args) {
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    for (int i = 0; i < n_variants; i++) {
        if (strcmp(variants[i].name, name) == 0) {
            if (set_variant(&variants[i], self) < 0) return NULL;
            Py_RETURN_NONE;
        }
    }
    PyErr_Format(PyExc_ValueError, "wsum: no variant %s on this CPU", name);
    return NULL;
}

static PyMethodDef methods[] = {
    {"variants", py_variants, METH_NOARGS, "variants(): the kernels this CPU can run, best first"},
    {"select", py_select, METH_VARARGS, "select(name): use the variant name (for tests)"},
    {"wsum_rows", py_wsum_rows, METH_VARARGS, "wsum_rows(src, K, out): row digests of src"},
    {"wsum_rows_f16_to_f32", py_wsum_rows_f16_to_f32, METH_VARARGS,
     "wsum_rows_f16_to_f32(src, K, out, dst): row digests of float16 src, src as float32 in dst"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_wsum",
                                    "Compiled row digests (see digest.py).", -1, methods};

PyMODINIT_FUNC PyInit__wsum(void) {
    find_variants();
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) return NULL;
    if (set_variant(&variants[0], mod) < 0) { /* the best this CPU runs */
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
