/* engine/intake/scripts.h — the Lua scripts that make every durable transition atomic
 * (DESIGN §2). Loaded once per connection (SCRIPT LOAD), called by SHA. */
#ifndef SALVO_ENGINE_INTAKE_SCRIPTS_H
#define SALVO_ENGINE_INTAKE_SCRIPTS_H

enum script_id { SCRIPT_SETTLE, SCRIPT_PROMOTE, SCRIPT_CLAIM, SCRIPT__COUNT };

struct script {
    const char *name;
    const char *source;
    char sha[41];      /* filled from SCRIPT LOAD */
};

extern struct script scripts[SCRIPT__COUNT];

#endif
