/* Loader test module: a valid shared object that exports no descriptor. */
#define _POSIX_C_SOURCE 200809L /* plugin.h's mh_strdup() uses strdup(), hidden by -std=c11 */
#include <mailhub/plugin.h>

MH_EXPORT int t_nodesc_marker(void);
int t_nodesc_marker(void)
{
    return 42;
}
