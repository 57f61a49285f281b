/*
 * pf's Fortran runtime for wasm32-wasi: the few libFortranRuntime entry points that
 * flang-19 emits for list-directed PRINT / WRITE(*,*) of scalars and for program
 * start, STOP and ERROR STOP.  Debian ships libFortranRuntime for x86_64 only, so
 * flang's host IR retargeted to wasm32 links against this file instead.
 *
 * Output matches flang's own runtime byte for byte for what it covers: every item is
 * preceded by one blank (none between two adjacent character items), records wrap at
 * 79 columns, reals use the shortest digits that read back exactly, printed as F
 * editing when the decimal exponent is in 0..precision and as 1PE editing otherwise
 * (flang's RealOutputEditing::EditListDirectedOutput).
 *
 * Signatures follow the wasm32 view of flang's IR: pointers are 32-bit, but sizes
 * that flang types as i64 (std::size_t on the host) stay 64-bit here.
 * Anything else (READ, formats, OPEN, array descriptors, ALLOCATE ...) is left
 * undefined on purpose: pf's driver names the missing Fortran feature at link time.
 */

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_LIMIT 79 /* flang's listDirectedOutputLineLengthLimit */
#define UNIT_DEFAULT (-1)
#define UNIT_STDERR 0
#define UNIT_STDOUT 6

typedef struct {
    FILE *stream;
    int position; /* columns already written in the current record */
    bool last_was_character;
} Statement;

static Statement statement;

/* flang's IR `main` renamed by pf's driver; absent in a library (reactor) module. */
extern int _pf_fortran_main(int argc, char **argv, char **envp) __attribute__((weak));

int __main_void(void) {
    if (!_pf_fortran_main) {
        return 0;
    }
    return _pf_fortran_main(0, NULL, NULL);
}

void _FortranAProgramStart(int argc, const char *argv[], const char *envp[],
                           const void *defaults) {
    (void)argc;
    (void)argv;
    (void)envp;
    (void)defaults;
}

void _FortranAProgramEndStatement(void) {
    fflush(stdout);
    fflush(stderr);
}

_Noreturn void _FortranAStopStatement(int code, bool is_error_stop, bool quiet) {
    fflush(stdout);
    if (!quiet) {
        fprintf(stderr, "Fortran %s", is_error_stop ? "ERROR STOP" : "STOP");
        if (code != 0) {
            fprintf(stderr, ": code %d\n", code);
        }
        fputc('\n', stderr);
    }
    exit(code);
}

_Noreturn void _FortranAStopStatementText(const char *text, int64_t length,
                                          bool is_error_stop, bool quiet) {
    fflush(stdout);
    if (!quiet) {
        fprintf(stderr, "Fortran %s: %.*s\n", is_error_stop ? "ERROR STOP" : "STOP",
                (int)length, text);
    }
    exit(is_error_stop ? EXIT_FAILURE : EXIT_SUCCESS);
}

_Noreturn void _FortranAExit(int code) {
    fflush(stdout);
    exit(code);
}

/* ---- list-directed output ------------------------------------------------------- */

void *_FortranAioBeginExternalListOutput(int unit, const char *source_file,
                                         int source_line) {
    FILE *stream = unit == UNIT_STDERR ? stderr : stdout;
    if (unit != UNIT_DEFAULT && unit != UNIT_STDOUT && unit != UNIT_STDERR) {
        fflush(stdout);
        fprintf(stderr,
                "fatal Fortran runtime error(%s:%d): WRITE to unit %d: pf's Fortran wasm "
                "runtime writes only to units 6 (or *) and 0\n",
                source_file ? source_file : "?", source_line, unit);
        exit(EXIT_FAILURE);
    }
    statement.stream = stream;
    statement.position = 0;
    statement.last_was_character = false;
    return &statement;
}

static void emit(Statement *io, const char *text, size_t length) {
    fwrite(text, 1, length, io->stream);
    io->position += (int)length;
}

static void advance_record(Statement *io) {
    fputc('\n', io->stream);
    io->position = 0;
}

/* The blank before an item, or a new record when the item does not fit. */
static void leading_space(Statement *io, size_t length, bool is_character) {
    bool space = io->position == 0 || !(is_character && io->last_was_character);
    io->last_was_character = false;
    size_t need = (size_t)space + length;
    if (io->position > 0 && need > (size_t)(RECORD_LIMIT - io->position)) {
        advance_record(io);
        space = true;
    }
    if (space) {
        emit(io, " ", 1);
    }
}

static bool put_item(Statement *io, const char *text, size_t length) {
    leading_space(io, length, false);
    emit(io, text, length);
    return true;
}

bool _FortranAioOutputAscii(void *cookie, const char *text, int64_t length) {
    Statement *io = cookie;
    leading_space(io, length > 0 ? 1 : 0, true);
    size_t put = 0;
    while (put < (size_t)length) {
        size_t room = io->position >= RECORD_LIMIT ? 0 : (size_t)(RECORD_LIMIT - io->position);
        size_t chunk = (size_t)length - put < room ? (size_t)length - put : room;
        if (chunk) {
            emit(io, text + put, chunk);
            put += chunk;
        } else {
            advance_record(io);
            emit(io, " ", 1);
        }
    }
    io->last_was_character = true;
    return true;
}

static bool put_integer(Statement *io, int64_t value) {
    char text[24];
    int length = snprintf(text, sizeof text, "%" PRId64, value);
    return put_item(io, text, (size_t)length);
}

bool _FortranAioOutputInteger8(void *cookie, int8_t value) { return put_integer(cookie, value); }
bool _FortranAioOutputInteger16(void *cookie, int16_t value) { return put_integer(cookie, value); }
bool _FortranAioOutputInteger32(void *cookie, int32_t value) { return put_integer(cookie, value); }
bool _FortranAioOutputInteger64(void *cookie, int64_t value) { return put_integer(cookie, value); }

bool _FortranAioOutputInteger128(void *cookie, __int128 value) {
    char digits[48];
    int n = 0;
    unsigned __int128 magnitude = value < 0 ? -(unsigned __int128)value : (unsigned __int128)value;
    do {
        digits[n++] = (char)('0' + (int)(magnitude % 10));
        magnitude /= 10;
    } while (magnitude);
    char text[48];
    int length = 0;
    if (value < 0) {
        text[length++] = '-';
    }
    while (n) {
        text[length++] = digits[--n];
    }
    return put_item(cookie, text, (size_t)length);
}

bool _FortranAioOutputLogical(void *cookie, bool value) {
    return put_item(cookie, value ? "T" : "F", 1);
}

/*
 * Shortest digits, the way flang's decimal library chooses them (binary-to-decimal.cpp,
 * BigRadixFloatingPointNumber::Minimize): take the exact decimal values of the two
 * midpoints between x and its binary neighbours, LOW rounded up and HIGH rounded down
 * (strictly below an exact midpoint) on the finest grid of the three exact values;
 * keep HIGH's digits up to the first one that differs from LOW, and make that last
 * digit the rounded-up mean of the two.  This is not always the nearest shortest
 * string (FLT_MAX prints as 3.4028234E+38), hence no printf("%g")-style shortcut.
 *
 * Numbers are little-endian arrays of decimal digits; doubles need at most ~770.
 */
#define BIG_DIGITS 1200

typedef struct {
    uint8_t d[BIG_DIGITS];
    int n;        /* digits in use; value = sum d[i] 10^i x 10^exponent */
    int exponent;
} Big;

static void big_mul_small(Big *b, uint32_t factor) {
    uint64_t carry = 0;
    for (int i = 0; i < b->n; ++i) {
        uint64_t v = (uint64_t)b->d[i] * factor + carry;
        b->d[i] = (uint8_t)(v % 10);
        carry = v / 10;
    }
    while (carry && b->n < BIG_DIGITS) {
        b->d[b->n++] = (uint8_t)(carry % 10);
        carry /= 10;
    }
}

/* The exact decimal value of a finite, non-negative double. */
static void big_from_double(Big *b, double value) {
    b->n = 0;
    b->exponent = 0;
    if (value == 0) {
        b->d[b->n++] = 0;
        return;
    }
    int binary_exponent;
    double fraction = frexp(value, &binary_exponent);
    uint64_t mantissa = (uint64_t)ldexp(fraction, 53);
    int e = binary_exponent - 53;
    while (!(mantissa & 1)) {
        mantissa >>= 1;
        ++e;
    }
    while (mantissa) {
        b->d[b->n++] = (uint8_t)(mantissa % 10);
        mantissa /= 10;
    }
    for (; e > 0; e -= e >= 16 ? 16 : e) {
        big_mul_small(b, 1u << (e >= 16 ? 16 : e));
    }
    /* m x 2^-k = m x 5^k x 10^-k */
    for (; e < 0; e += e <= -8 ? 8 : -e) {
        big_mul_small(b, e <= -8 ? 390625u : (uint32_t)pow(5, -e));
        b->exponent -= e <= -8 ? 8 : -e;
    }
}

static void big_trim(Big *b) {
    int zeros = 0;
    while (zeros < b->n - 1 && b->d[zeros] == 0) {
        ++zeros;
    }
    memmove(b->d, b->d + zeros, (size_t)(b->n - zeros));
    b->n -= zeros;
    b->exponent += zeros;
}

static void big_rescale(Big *b, int exponent) {
    int shift = b->exponent - exponent;
    memmove(b->d + shift, b->d, (size_t)b->n);
    memset(b->d, 0, (size_t)shift);
    b->n += shift;
    b->exponent = exponent;
}

/* out = (a + b) / 2 on a common grid; returns whether the halving had a remainder. */
static bool big_mean(const Big *a, const Big *b, Big *out) {
    int n = a->n > b->n ? a->n : b->n;
    int carry = 0;
    for (int i = 0; i < n; ++i) {
        int v = (i < a->n ? a->d[i] : 0) + (i < b->n ? b->d[i] : 0) + carry;
        out->d[i] = (uint8_t)(v % 10);
        carry = v / 10;
    }
    if (carry) {
        out->d[n++] = (uint8_t)carry;
    }
    int remainder = 0;
    for (int i = n - 1; i >= 0; --i) {
        int v = remainder * 10 + out->d[i];
        out->d[i] = (uint8_t)(v / 2);
        remainder = v % 2;
    }
    out->n = n;
    out->exponent = a->exponent;
    return remainder != 0;
}

static void big_add_one(Big *b) {
    for (int i = 0; i < b->n; ++i) {
        if (b->d[i] < 9) {
            ++b->d[i];
            return;
        }
        b->d[i] = 0;
    }
    b->d[b->n++] = 1;
}

static void big_sub_one(Big *b) {
    for (int i = 0; i < b->n; ++i) {
        if (b->d[i] > 0) {
            --b->d[i];
            return;
        }
        b->d[i] = 9;
    }
}

static Big big_x, big_low, big_high, big_mid;

/* Digits (most significant first, no trailing zeros) and E with value = 0.DIGITS x 10^E. */
static int shortest_digits(double value, double below, double above, char *digits, int *expo) {
    big_from_double(&big_x, value);
    big_from_double(&big_low, below);
    big_from_double(&big_high, above);
    big_trim(&big_x);
    big_trim(&big_low);
    big_trim(&big_high);
    int grid = big_x.exponent;
    grid = big_low.exponent < grid ? big_low.exponent : grid;
    grid = big_high.exponent < grid ? big_high.exponent : grid;
    big_rescale(&big_x, grid);
    big_rescale(&big_low, grid);
    big_rescale(&big_high, grid);
    if (big_mean(&big_low, &big_x, &big_mid)) {
        big_add_one(&big_mid);
    }
    big_low = big_mid;
    if (!big_mean(&big_high, &big_x, &big_mid)) {
        big_sub_one(&big_mid);
    }
    big_high = big_mid;
    const Big *chosen = &big_x;
    int n = big_high.n;
    while (n > 1 && big_high.d[n - 1] == 0) {
        --n;
    }
    int first = n - 1; /* index of the first digit where HIGH and LOW differ */
    while (first >= 0 && big_high.d[first] == (first < big_low.n ? big_low.d[first] : 0)) {
        --first;
    }
    int count = 0;
    if (first < 0) {
        int m = big_x.n;
        while (m > 1 && big_x.d[m - 1] == 0) {
            --m;
        }
        for (int i = m - 1; i >= 0 && count < 40; --i) {
            digits[count++] = (char)('0' + chosen->d[i]);
        }
        *expo = m + chosen->exponent;
    } else {
        for (int i = n - 1; i > first; --i) {
            digits[count++] = (char)('0' + big_high.d[i]);
        }
        int high = big_high.d[first];
        int low = first < big_low.n ? big_low.d[first] : 0;
        digits[count++] = (char)('0' + high - ((high - low) >> 1));
        *expo = n + big_high.exponent;
    }
    while (count > 1 && digits[count - 1] == '0') {
        --count;
    }
    digits[count] = '\0';
    return count;
}

/* flang's list-directed form of one real: F editing for exponents 0..precision, else 1PE. */
static int format_real(double value, bool is_float, char *out) {
    int length = 0;
    if (isnan(value)) {
        return sprintf(out, "NaN");
    }
    if (signbit(value)) {
        out[length++] = '-';
        value = -value;
    }
    if (isinf(value)) {
        return length + sprintf(out + length, "Inf");
    }
    if (value == 0) {
        return length + sprintf(out + length, "0.");
    }
    char digits[BIG_DIGITS];
    int exponent;
    double below, above;
    if (is_float) {
        below = nextafterf((float)value, 0.0f);
        above = (float)value == FLT_MAX ? value : nextafterf((float)value, INFINITY);
    } else {
        below = nextafter(value, 0.0);
        above = value == DBL_MAX ? value : nextafter(value, INFINITY);
    }
    int n = shortest_digits(value, below, above, digits, &exponent);
    /* flang picks the form from the exponent of the value rounded to one digit */
    char rounded[16];
    snprintf(rounded, sizeof rounded, "%.0e", value);
    int form_exponent = atoi(strchr(rounded, 'e') + 1) + 1;
    int precision = is_float ? 6 : 15;
    if (form_exponent >= 0 && form_exponent <= precision) {
        for (int i = 0; i < exponent; ++i) {
            out[length++] = i < n ? digits[i] : '0';
        }
        out[length++] = '.';
        for (int i = exponent; i < 0; ++i) {
            out[length++] = '0';
        }
        for (int i = exponent > 0 ? exponent : 0; i < n; ++i) {
            out[length++] = digits[i];
        }
    } else {
        out[length++] = digits[0];
        out[length++] = '.';
        for (int i = 1; i < n; ++i) {
            out[length++] = digits[i];
        }
        int e = exponent - 1;
        length += sprintf(out + length, "E%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    out[length] = '\0';
    return length;
}

bool _FortranAioOutputReal32(void *cookie, float value) {
    char text[48];
    return put_item(cookie, text, (size_t)format_real(value, true, text));
}

bool _FortranAioOutputReal64(void *cookie, double value) {
    char text[48];
    return put_item(cookie, text, (size_t)format_real(value, false, text));
}

static bool put_complex(Statement *io, double re, double im, bool is_float) {
    char text[100];
    int length = 0;
    text[length++] = '(';
    length += format_real(re, is_float, text + length);
    text[length++] = ',';
    length += format_real(im, is_float, text + length);
    text[length++] = ')';
    return put_item(io, text, (size_t)length);
}

bool _FortranAioOutputComplex32(void *cookie, float re, float im) {
    return put_complex(cookie, re, im, true);
}

bool _FortranAioOutputComplex64(void *cookie, double re, double im) {
    return put_complex(cookie, re, im, false);
}

int _FortranAioEndIoStatement(void *cookie) {
    Statement *io = cookie;
    advance_record(io);
    fflush(io->stream);
    return 0; /* IostatOk */
}
