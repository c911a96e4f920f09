/* datadir: see include/turnkey/datadir.h. */
#include "turnkey/datadir.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "turnkey/log.h"
#include "turnkey/util.h"

#define OPEN_BITS ((mode_t)(S_IRWXG | S_IRWXO))

static int open_error(const char *path, const struct stat *st, char **err)
{
    bool dir = S_ISDIR(st->st_mode);
    *err = util_xasprintf("%s %s is accessible to group/others (mode %04o); the data directory "
                          "must be private: run `chmod %s %s`",
                          dir ? "directory" : "file", path, (unsigned)(st->st_mode & 07777),
                          dir ? "700" : "600", path);
    return DATADIR_ERROR;
}

/* The directory itself: made 0700 if missing (create), tightened if ours. */
static int check_dir(const char *dir, bool create, char **err)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT) {
            *err = util_xasprintf("cannot examine data directory %s: %s", dir, strerror(errno));
            return DATADIR_ERROR;
        }
        if (!create)
            return DATADIR_MISSING;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            *err = util_xasprintf("cannot create data directory %s: %s", dir, strerror(errno));
            return DATADIR_ERROR;
        }
        if (stat(dir, &st) != 0) {
            *err = util_xasprintf("cannot examine data directory %s: %s", dir, strerror(errno));
            return DATADIR_ERROR;
        }
    }
    if (!S_ISDIR(st.st_mode)) {
        *err = util_xasprintf("data directory %s is not a directory", dir);
        return DATADIR_ERROR;
    }
    if (!(st.st_mode & OPEN_BITS))
        return DATADIR_OK;
    if (st.st_uid != geteuid())
        return open_error(dir, &st, err);
    if (chmod(dir, st.st_mode & ~OPEN_BITS & 07777) != 0) {
        *err = util_xasprintf("cannot make data directory %s private (chmod 700): %s", dir,
                              strerror(errno));
        return DATADIR_ERROR;
    }
    log_warn("datadir", "data directory %s was mode %04o: changed to %04o", dir,
             (unsigned)(st.st_mode & 07777), (unsigned)(st.st_mode & ~OPEN_BITS & 07777));
    return DATADIR_OK;
}

int datadir_check(const char *dir, bool create, char **err)
{
    *err = NULL;
    int rc = check_dir(dir, create, err);
    if (rc != DATADIR_OK)
        return rc;
    DIR *d = opendir(dir);
    if (!d) {
        *err = util_xasprintf("cannot read data directory %s: %s", dir, strerror(errno));
        return DATADIR_ERROR;
    }
    struct dirent *e;
    while (rc == DATADIR_OK && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *path = util_xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && !S_ISLNK(st.st_mode) && (st.st_mode & OPEN_BITS))
            rc = open_error(path, &st, err);
        free(path);
    }
    closedir(d);
    return rc;
}
