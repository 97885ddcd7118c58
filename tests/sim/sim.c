/* placeholder */
typedef int lc__sim_placeholder;
