/* engine/intake/scripts.h — the Lua scripts that make every durable transition atomic
 * (DESIGN §2). Loaded once per connection (SCRIPT LOAD), called by SHA. */
#ifndef SALVO_ENGINE_INTAKE_SCRIPTS_H
#define SALVO_ENGINE_INTAKE_SCRIPTS_H

enum script_id { SCRIPT_SETTLE, SCRIPT_PROMOTE, SCRIPT_CLAIM, SCRIPT__COUNT };

struct script {
    const char *name;
    const char *source;
};

extern const struct script scripts[SCRIPT__COUNT];

/* A script's SHA on one connection (each intake keeps its own: worker threads share nothing). */
struct script_sha {
    const struct script *s;
    char sha[41];      /* filled from SCRIPT LOAD */
};

#endif
