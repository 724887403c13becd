#include "opcheck.h"

const oc_entry oc_cases_shape[] = {{0}};
