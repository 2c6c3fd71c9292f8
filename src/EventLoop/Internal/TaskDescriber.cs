using System.Reflection;
using System.Text;
using System.Threading.Tasks.Sources;

namespace EventLoop.Internal;

/// <summary>
/// Describes where a pending task is suspended, for <see cref="Loop.DescribePendingTasks"/> (asyncio's
/// <c>Task.print_stack</c>): an async method's task is the runtime's state-machine box, whose <c>StateMachine</c> field
/// holds the compiler's state machine; its <c>&lt;&gt;1__state</c> field is the await it is suspended at (0 for the
/// first await in the method, 1 for the second...), and its <c>&lt;&gt;u__N</c> fields hold the awaiter, which holds what
/// is awaited. These are implementation details of the runtime and the C# compiler, read by reflection for a
/// debugging aid: anything not found is left out of the description, never thrown.
/// </summary>
internal static class TaskDescriber
{
    private const BindingFlags Fields = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;

    /// <summary>One line per task: the method, the await it is suspended at, and what that await waits for; nested awaits of pending async methods follow, indented.</summary>
    public static string Describe(Task task, int depth = 0)
    {
        var text = new StringBuilder();
        Append(text, task, depth, new HashSet<Task>());
        return text.ToString();
    }

    private static void Append(StringBuilder text, Task task, int depth, HashSet<Task> seen)
    {
        text.Append(' ', depth * 2);
        if (!seen.Add(task))
        {
            text.Append("(task ").Append(task.Id).AppendLine(", shown above)");
            return;
        }

        object? stateMachine = StateMachineOf(task);
        if (stateMachine is null)
        {
            text.Append("task ").Append(task.Id).Append(' ').Append(task.Status).Append(": ").AppendLine(NameOf(task));
            return;
        }

        int? state = stateMachine.GetType().GetField("<>1__state", Fields)?.GetValue(stateMachine) as int?;
        text.Append("task ").Append(task.Id).Append(' ').Append(MethodOf(stateMachine.GetType()));
        text.Append(state switch
        {
            >= 0 => $", suspended at await #{state + 1}",
            -1 => ", running (or not yet started)",
            -2 => ", finished",
            _ => "",
        });

        object? awaited = state >= 0 ? AwaitedBy(stateMachine) : null;
        if (awaited is null)
        {
            text.AppendLine();
            return;
        }

        if (awaited is Task inner && StateMachineOf(inner) is not null && !inner.IsCompleted)
        {
            text.AppendLine(", awaiting:");
            Append(text, inner, depth + 1, seen);
        }
        else
        {
            text.Append(", awaiting ").AppendLine(NameOf(awaited));
        }
    }

    /// <summary>True when <paramref name="task"/> is an async method's task (the runtime's state-machine box). Cheap: a type name check.</summary>
    public static bool IsAsyncMethod(Task task) => task.GetType().Name.StartsWith("AsyncStateMachineBox", StringComparison.Ordinal);

    /// <summary>The compiler's state machine inside a runtime async-method box, or null when <paramref name="task"/> is not one.</summary>
    public static object? StateMachineOf(Task task) =>
        IsAsyncMethod(task) ? task.GetType().GetField("StateMachine", Fields)?.GetValue(task) : null;

    /// <summary>The task a suspended async method's pending await waits for, if it waits for a task.</summary>
    public static Task? AwaitedTask(Task task) =>
        StateMachineOf(task) is { } machine && machine.GetType().GetField("<>1__state", Fields)?.GetValue(machine) is int state && state >= 0
            ? AwaitedBy(machine) as Task
            : null;

    /// <summary>"Namespace.Type.Method" of an async method's state machine type (<c>&lt;Method&gt;d__N</c>, nested in its type).</summary>
    public static string MethodOf(Type stateMachine)
    {
        string name = stateMachine.Name;
        int open = name.IndexOf('<'), close = name.LastIndexOf('>');
        string method = open == 0 && close > 1 ? name[1..close] : name;
        if (method.StartsWith('<') && method.IndexOf('>') is var end and > 1)
        {
            method = $"{method[1..end]} (lambda)"; // <<Outer>b__0_0>d: a lambda inside Outer
        }

        Type? owner = stateMachine.DeclaringType;
        while (owner is not null && owner.Name.StartsWith('<'))
        {
            owner = owner.DeclaringType; // <>c, <>c__DisplayClass: closures of the method's class
        }

        return owner is null ? method : $"{owner.FullName?.Replace('+', '.')}.{method}";
    }

    /// <summary>The task or value-task source the state machine's pending awaiter holds.</summary>
    private static object? AwaitedBy(object stateMachine)
    {
        foreach (FieldInfo field in stateMachine.GetType().GetFields(Fields))
        {
            if (field.Name.StartsWith("<>u__", StringComparison.Ordinal) && field.GetValue(stateMachine) is { } awaiter
                && Find(awaiter, depth: 0) is { } awaited)
            {
                return awaited;
            }
        }

        return null;
    }

    // TaskAwaiter.m_task, ConfiguredTaskAwaiter.m_task, ValueTaskAwaiter._value._obj, ...: a few structs deep.
    private static object? Find(object value, int depth)
    {
        if (value is Task || IsValueTaskSource(value.GetType()))
        {
            return value;
        }

        if (depth >= 3 || !value.GetType().IsValueType)
        {
            return null;
        }

        foreach (FieldInfo field in value.GetType().GetFields(Fields))
        {
            if (field.GetValue(value) is { } inner && Find(inner, depth + 1) is { } found)
            {
                return found;
            }
        }

        return null;
    }

    private static bool IsValueTaskSource(Type type) =>
        typeof(IValueTaskSource).IsAssignableFrom(type)
        || type.GetInterfaces().Any(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IValueTaskSource<>));

    private static string NameOf(object awaited) => awaited switch
    {
        Task task when StateMachineOf(task) is { } machine => $"task {task.Id} {MethodOf(machine.GetType())} ({task.Status})",
        Task task => $"task {task.Id} ({FriendlyName(task.GetType())}, {task.Status})",
        _ => awaited.ToString() is { } described && described != awaited.GetType().ToString() ? described : FriendlyName(awaited.GetType()),
    };

    /// <summary>A type's name as C# writes it: <c>AsyncQueue&lt;Int32&gt;</c>.</summary>
    public static string FriendlyName(Type type)
    {
        if (!type.IsGenericType)
        {
            return type.Name;
        }

        string name = type.Name[..type.Name.IndexOf('`')];
        return $"{name}<{string.Join(", ", type.GetGenericArguments().Select(FriendlyName))}>";
    }

    /// <summary>
    /// The task an await continuation belongs to: the state passed with it (a value-task source's continuation gets the
    /// async method's box as state) or the continuation delegate's target (a posted <c>MoveNext</c>).
    /// </summary>
    public static Task? TaskOfContinuation(object? state) => state as Task ?? (state as Delegate)?.Target as Task;
}
