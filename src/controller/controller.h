/* controller.h - `loadease controller`: the closed loop (docs/controller.md). */
#ifndef LE_CONTROLLER_CONTROLLER_H
#define LE_CONTROLLER_CONTROLLER_H

int controller_main(int argc, char **argv);

#endif
