/* net/hclient.c: placeholder replaced by the http kind (being written now). */
#include "engine/internal.h"
int rf__http_kind_register(rf_engine *eng)
{
    (void)eng;
    return 0;
}
void rf__http_kind_free(rf_engine *eng)
{
    (void)eng;
}
