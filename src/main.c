/* turnkey: entry point (placeholder until the CLI lands). */
#include <stdio.h>
int main(void)
{
    puts("turnkey");
    return 0;
}
