#include "opcheck.h"

const oc_entry oc_cases_conv[] = {{0}};
