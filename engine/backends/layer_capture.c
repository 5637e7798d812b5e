/* The eval callback of engine/backends/layer_capture.py, in C: it never takes the GIL.
 *
 * llama.cpp's scheduler calls it for every node of the compute graph (a few hundred per decode),
 * first asking whether the node is wanted, then handing over each wanted node once computed. A
 * Python callback takes the GIL for each call, and beside a thread that keeps the GIL busy (a
 * saturated event loop) every call waits for it. This one reads and writes only the plain struct
 * the Python side owns (`CaptureState` there: same fields, same order) and calls ggml through
 * the function pointers it holds, so it needs no ggml header and no Python header; setuptools
 * builds it as an optional extension (pyproject.toml), and ctypes loads it as a library.
 *
 * What it does is what `LayerCapture._on_tensor` does: for a wanted `l_out-<layer>` node it
 * copies the batch's rows into `scratch`, keeps the last row for a kept layer, and adds the rows
 * from `skip_rows` on into the layer's float64 sum for an averaged layer. Any surprise (a node
 * that is not `width` float32 columns, more rows than `scratch` holds) sets `error` and answers
 * "continue": false after a computed node would stop the decode.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef SWITCHBOARD_MAX_READS
#define SWITCHBOARD_MAX_READS 8
#endif
#define SWITCHBOARD_NAME_SIZE 32

typedef const char *(*get_name_fn)(const void *tensor);
typedef int64_t (*nelements_fn)(const void *tensor);
typedef size_t (*nbytes_fn)(const void *tensor);
typedef void (*tensor_get_fn)(const void *tensor, void *data, size_t offset, size_t size);

struct capture_state {
    get_name_fn get_name;
    nelements_fn nelements;
    nbytes_fn nbytes;
    tensor_get_fn tensor_get;
    int64_t width;
    int64_t skip_rows;
    int64_t scratch_rows;
    float *scratch;
    int32_t n_wanted;
    int32_t error;
    char names[SWITCHBOARD_MAX_READS][SWITCHBOARD_NAME_SIZE];
    int32_t averaged[SWITCHBOARD_MAX_READS];
    int32_t kept[SWITCHBOARD_MAX_READS];
    double *sums[SWITCHBOARD_MAX_READS];
    int64_t counts[SWITCHBOARD_MAX_READS];
    float *last[SWITCHBOARD_MAX_READS];
    int32_t has_last[SWITCHBOARD_MAX_READS];
};

/* sizeof(struct capture_state): the Python side refuses a library built from another layout. */
size_t switchboard_capture_state_size(void) { return sizeof(struct capture_state); }

static int wanted(const struct capture_state *state, const char *name) {
    if (name == NULL) {
        return -1;
    }
    for (int32_t i = 0; i < state->n_wanted; ++i) {
        if (strncmp(state->names[i], name, SWITCHBOARD_NAME_SIZE) == 0) {
            return i;
        }
    }
    return -1;
}

bool switchboard_capture_layer(void *tensor, bool ask, void *user_data) {
    struct capture_state *state = (struct capture_state *)user_data;
    if (state == NULL || state->n_wanted <= 0) {
        return !ask;
    }
    int i = wanted(state, state->get_name(tensor));
    if (ask) {
        return i >= 0;
    }
    if (i < 0) {
        return true;
    }
    int64_t n = state->nelements(tensor);
    if (state->width <= 0 || n % state->width != 0 || state->nbytes(tensor) != (size_t)n * 4) {
        state->error = 1;
        return true;
    }
    int64_t rows = n / state->width;
    if (rows > state->scratch_rows) {
        state->error = 2;
        return true;
    }
    state->tensor_get(tensor, state->scratch, 0, (size_t)n * 4);
    if (state->kept[i] && rows > 0) {
        memcpy(state->last[i], state->scratch + (rows - 1) * state->width,
               (size_t)state->width * sizeof(float));
        state->has_last[i] = 1;
    }
    if (state->averaged[i]) {
        int64_t first = state->skip_rows > 0 ? state->skip_rows : 0;
        for (int64_t r = first; r < rows; ++r) {
            const float *row = state->scratch + r * state->width;
            double *sum = state->sums[i];
            for (int64_t c = 0; c < state->width; ++c) {
                sum[c] += (double)row[c];
            }
        }
        if (rows > first) {
            state->counts[i] += rows - first;
        }
    }
    return true;
}
