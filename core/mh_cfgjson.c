#include "config.h"

#include "mh_cfgjson.h"
#include "mh_config.h"
#include "mh_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct mh_cfg_node *mh_cfg_from_json(const json_t *v)
{
    struct mh_cfg_node *n = mh_xcalloc(1, sizeof *n);
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        n->type = MH_CFG_MAP;
        size_t count = json_object_size(v);
        n->pairs = mh_xcalloc(count + 1, sizeof *n->pairs);
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val) {
            n->pairs[n->n].key = mh_xstrdup(key);
            n->pairs[n->n].value = mh_cfg_from_json(val);
            n->n++;
        }
        break;
    }
    case JSON_ARRAY: {
        n->type = MH_CFG_SEQ;
        size_t count = json_array_size(v);
        n->items = mh_xcalloc(count + 1, sizeof *n->items);
        for (size_t i = 0; i < count; i++)
            n->items[n->n++] = mh_cfg_from_json(json_array_get(v, i));
        break;
    }
    case JSON_STRING:
        n->type = MH_CFG_SCALAR;
        n->scalar = mh_xstrdup(json_string_value(v));
        n->quoted = 1;
        break;
    case JSON_INTEGER:
        n->type = MH_CFG_SCALAR;
        n->scalar = mh_asprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        n->type = MH_CFG_SCALAR;
        n->scalar = mh_asprintf("%.17g", json_real_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        n->type = MH_CFG_SCALAR;
        n->scalar = mh_xstrdup(json_is_true(v) ? "true" : "false");
        break;
    case JSON_NULL:
    default:
        n->type = MH_CFG_SCALAR;
        n->scalar = mh_xstrdup("");
        n->is_null = 1;
        break;
    }
    return n;
}
