/* Fault injection for start-up paths, compiled only into tests. In a build that defines
 * HW_FAULT_INJECTION, HW_FAULT("pipeline.redis") asks the test's hw_fault_hit(), which returns 0 to
 * go on or a negative errno to make that step fail as if the call after it had; everywhere else
 * HW_FAULT is the constant 0 and compiles away. Each start step that can fail has one, so a test
 * can fail them in turn and prove that what started before is closed (tests/integration/
 * test_start_fail.c). */
#ifndef HW_FAULT_H
#define HW_FAULT_H

#ifdef HW_FAULT_INJECTION
int hw_fault_hit(const char *step);
#define HW_FAULT(step) hw_fault_hit(step)
#else
#define HW_FAULT(step) 0
#endif

#endif
