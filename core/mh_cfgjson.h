/* JSON (jansson) into the configuration tree, so that account settings from the API are validated by the same
 * option tables, with the same messages, as mailhub.yaml. */
#ifndef MH_CFGJSON_H
#define MH_CFGJSON_H

#include <jansson.h>

struct mh_cfg_node;

/**
 * Convert a JSON value into a tree (positions 0): objects become maps,
 * arrays lists, strings/numbers/booleans scalars, null a null scalar.
 * Ownership: free with mh_cfg_node_free().
 */
struct mh_cfg_node *mh_cfg_from_json(const json_t *v);

#endif
